#version 450 core
// The OpenGL renderer's pass (VirtioGpuHost.Compositor.Rendering.OpenGL): one workgroup per
// 16x16 target tile that some call touches, one invocation per pixel. The CPU bins the calls per
// tile (GlRenderPass.BuildChunk), so every loop bound and every call parameter is the same for the
// whole workgroup; the contract's integer arithmetic (IRenderer.cs) keeps the result bit-exact
// with the CPU renderer:
//   - sources: R32UI textures holding the guest's bytes unchanged (one native little-endian u32
//     per pixel), read with texelFetch at the source coordinate the CPU computed with
//     NearestMapping (per-call tables of source x and y; 1:1 axes are an offset): no filtering,
//     no float coordinates, no int64;
//   - opaque layouts are swizzled to B, G, R, 255; dim is x·dim/255; blending is premultiplied
//     source-over, saturating; x·a/255 is rounded as (t + (t >> 8)) >> 8, t = x·a + 128,
//     computed for two channels per 32-bit multiply (the pixel kept as one 0xAARRGGBB word);
//   - the target: an RGBA8 texture bound as an r32ui image (one word, R and B swapped), read once (not at all
//     under an opaque whole-tile call) and written once per pixel per dispatch.
// Written for llvmpipe (8 invocations per SIMD vector, both sides of every branch executed under
// a mask): no per-pixel branches in the loop, fewest operations on every path.
//
// Parameters (one buffer, read as the texel buffer prm, each chunk's calls also as the uniform block):
//   tile record (4 words): tile x | tile y << 16, first entry, entry count, 1 = load the target
//     (0: the first entry is an opaque call covering the whole tile, everything under it culled);
//   entry (4 words): call index | 0x80000000 when the call covers the whole tile; first piece,
//     end piece (only for partial entries: the pixel must lie in one of the call's pieces, 4-word
//     rects x0, y0, x1, y1 = clip ∩ damage ∩ destination ∩ target), 0;
//   call (8 words, uniform block): flags, colour (fills) or dim, source x offset or x table,
//     source y offset or y table, bounds x0 | x1 << 16, bounds y0 | y1 << 16 (union of its pieces), 0, 0.
//     flags: bit 0 texture, bit 2 scaled x, bit 3 scaled y, bits 8..15 SourceLayout, bits 16..23 slot.
//     Tables: prm[table + x] = source x for target column x (prm[table + y] for rows).
layout(local_size_x = 16, local_size_y = 16, local_size_z = 1) in;

const uint F_TEXTURE = 1u;
const uint F_SCALED_X = 4u;
const uint F_SCALED_Y = 8u;
const uint LAYOUT_XRGB = 1u;
const uint LAYOUT_RGBX = 2u;
const uint LAYOUT_XBGR = 3u;
const uint LAYOUT_PREMULTIPLIED = 4u;

layout(binding = 0, r32ui) uniform restrict uimage2D target; // the RGBA8 target as words 0xAABBGGRR (format compatible by size)
layout(binding = 0) uniform usampler2D textures[16];
layout(binding = 16) uniform usamplerBuffer prm;
layout(std140, binding = 0) uniform Calls { uvec4 calls[4096]; };

layout(location = 1) uniform int tileOffset;
layout(location = 2) uniform int tileCount;
layout(location = 3) uniform int width;
layout(location = 4) uniform int height;

// x·a/255 rounded for the two bytes of x at bits 0 and 16 at once (x = 0x00PP00QQ, a ≤ 255): each
// 16-bit half holds t ≤ 65153 and t + (t >> 8) < 65536, so no carry crosses the halves and each
// result is exactly the per-channel formula
uint mul255x2(uint x, uint a)
{
    uint t = x * a + 0x00800080u;
    return ((t + ((t >> 8) & 0x00FF00FFu)) >> 8) & 0x00FF00FFu;
}

uint word(int i) { return texelFetch(prm, i).x; }

void main()
{
    // the last row of workgroups may run past the tile list: those do nothing (no return: uniform anyway)
    int tileIndex = int(gl_WorkGroupID.x + gl_WorkGroupID.y * 65535u);
    bool valid = tileIndex < tileCount;
    int r = tileOffset + min(tileIndex, tileCount - 1) * 4;
    uint tile = word(r);
    int entryStart = int(word(r + 1));
    int entryEnd = valid ? entryStart + int(word(r + 2)) : entryStart;
    bool load = valid && word(r + 3) != 0u;
    ivec2 q = ivec2(int(tile & 0xFFFFu) * 16, int(tile >> 16) * 16) + ivec2(gl_LocalInvocationID.xy);
    bool inside = q.x < width && q.y < height;

    uint c = 0u;
    if (load && inside)
    {
        uint v = imageLoad(target, q).r; // bytes r, g, b, a
        c = (v & 0xFF00FF00u) | ((v >> 16) & 0xFFu) | ((v & 0xFFu) << 16);
    }
    bool drawn = false;

    for (int e = entryStart; e < entryEnd; e++)
    {
        uint head = word(e * 4);
        int k = int(head & 0xFFFFu);
        bool covered = inside;
        if ((head & 0x80000000u) == 0u)
        {
            bool hit = false;
            int pieceEnd = int(word(e * 4 + 2));
            for (int j = int(word(e * 4 + 1)); j < pieceEnd; j++)
            {
                int o = j * 4;
                hit = hit || (q.x >= int(word(o)) && q.y >= int(word(o + 1)) && q.x < int(word(o + 2)) && q.y < int(word(o + 3)));
            }
            covered = covered && hit;
        }
        uvec4 a = calls[k * 2], b = calls[k * 2 + 1];
        // pixels the call does not draw still compute (masked lanes): clamped into its bounds, their reads stay in range
        ivec2 p = clamp(q, ivec2(b.x & 0xFFFFu, b.y & 0xFFFFu), ivec2(b.x >> 16, b.y >> 16) - 1);
        uint flags = a.x;
        int sx = (flags & F_SCALED_X) != 0u ? int(word(int(a.z) + p.x)) : p.x + int(a.z);
        int sy = (flags & F_SCALED_Y) != 0u ? int(word(int(a.w) + p.y)) : p.y + int(a.w);
        bool isTexture = (flags & F_TEXTURE) != 0u;
        // the slot is dynamically uniform (the same call for the whole workgroup); fills read texel (0, 0) of slot 0 and ignore it
        uint w = texelFetch(textures[(flags >> 16) & 0xFFu], isTexture ? ivec2(sx, sy) : ivec2(0), 0).r;
        // layout → BGRA word: bytes shifted down (Xrgb, Xbgr), R and B swapped (Xrgb, Rgbx), alpha
        // forced to 255 (opaque layouts)
        uint srcLayout = (flags >> 8) & 0xFFu;
        w >>= (srcLayout == LAYOUT_XRGB || srcLayout == LAYOUT_XBGR) ? 8u : 0u;
        uint swapped = (w & 0xFF00FF00u) | ((w >> 16) & 0xFFu) | ((w & 0xFFu) << 16);
        w = (srcLayout == LAYOUT_XRGB || srcLayout == LAYOUT_RGBX) ? swapped : w;
        w |= srcLayout == LAYOUT_PREMULTIPLIED ? 0u : 0xFF000000u;
        // colour channels times dim/255 (255 leaves them unchanged), alpha kept
        w = (mul255x2(w & 0x00FF00FFu, a.y & 0xFFu) | (mul255x2((w >> 8) & 0x00FF00FFu, a.y & 0xFFu) << 8) & 0x0000FF00u) | (w & 0xFF000000u);
        uint s = isTexture ? w : a.y;
        // premultiplied source-over, each channel s + d·(255 − sa)/255, saturating
        uint inv = 255u - (s >> 24);
        uint lo = (s & 0x00FF00FFu) + mul255x2(c & 0x00FF00FFu, inv);
        uint hi = ((s >> 8) & 0x00FF00FFu) + mul255x2((c >> 8) & 0x00FF00FFu, inv);
        lo = (lo | (((lo >> 8) & 0x00010001u) * 0xFFu)) & 0x00FF00FFu;
        hi = (hi | (((hi >> 8) & 0x00010001u) * 0xFFu)) & 0x00FF00FFu;
        uint o = lo | (hi << 8);
        c = covered ? o : c;
        drawn = drawn || covered;
    }
    if (drawn) imageStore(target, q, uvec4((c & 0xFF00FF00u) | ((c >> 16) & 0xFFu) | ((c & 0xFFu) << 16)));
}

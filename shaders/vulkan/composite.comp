#version 450
// The Vulkan renderer's whole pass (VirtioGpuHost.Compositor.Rendering.Vulkan): one workgroup
// per 16x16 target tile that some call touches, one invocation per 4 horizontally adjacent
// pixels (a uvec4 of packed words, so per-invocation work — tile record, entry, call data,
// bounds — is paid once per 4 pixels). The CPU bins the calls per tile (VulkanRenderPass.Build),
// so every loop bound and every call parameter here is the same for the whole workgroup; the
// contract's integer arithmetic (IRenderer.cs) keeps the result bit-exact with the CPU renderer:
//   - the source pixel is a raw 32-bit word of the texture's memory (the guest's bytes or a host
//     texture) read from a storage buffer, at the source coordinate the CPU computed with
//     NearestMapping (per-call tables of source x and y; 1:1 axes are an offset);
//   - opaque layouts are swizzled to B, G, R, 255; dim is x·dim/255; blending is
//     premultiplied source-over; x·a/255 is rounded as (t + (t >> 8)) >> 8, t = x·a + 128.
// Written for software rasterizers too (lavapipe runs 8 invocations per SIMD vector and executes
// both sides of every branch under a mask): no per-pixel branches, no storage-buffer reads in the
// loop but the texture words (on lavapipe 22.3 a storage-buffer access is one scalar loop over the
// 8 lanes per access, however many components it has: so one uvec4 access costs about what one
// uint access does; texel fetches are gathers, uniform-block reads at uniform offsets are scalar).
// Two pipelines from this one module (specialisation constant SIMPLE): the CPU sends a tile to
// the SIMPLE one when every entry of it covers the whole tile and every call is a fill or a 1:1
// texture (both axes), undimmed, Bgrx or BgraPremultiplied, whose word index of pixel (x, y) is
// x modulo 4, on a target whose width is a multiple of 4 — then each invocation's 4 pixels are one
// 16-byte access to the target and one to each texture (tgt4, tex4: the same descriptors as
// uvec4 arrays), its entries carry the call itself (one 4-word fetch), and the piece tests, the
// source tables, the swizzle and the dim are compiled out; every other tile goes to the general one.
// Target: premultiplied BGRA words (0xAARRGGBB), row-major, width words per row.
//
// Parameters (one buffer, read as the texel buffers prm (1 word per texel) and prm4 (4 words per
// texel), its call part also as the uniform block):
//   tile record (4 words, at a multiple of 4): tile x | tile y << 16, first entry (in 4-word units),
//     entry count, 1 = load the target (0: the first entry is an opaque call covering the whole
//     tile, everything under it culled);
//   SIMPLE entry (4 words): flags, colour (fills), word of target pixel (0, 0) in the texture
//     (base + source y offset · stride + source x offset, modulo 2^32), stride in words;
//   general entry (4 words): call index | 0x80000000 when the call covers the whole tile; first piece,
//     end piece (only for partial entries: the pixel must lie in one of the call's pieces, 4-word
//     rects x0, y0, x1, y1 = clip ∩ damage ∩ destination ∩ target), 0;
//   call (8 words, uniform block): flags, colour (fills) or dim, source x offset or x table,
//     source y offset or y table, texture base word, texture stride in words, bounds x0 | x1 << 16,
//     bounds y0 | y1 << 16 (the union of its pieces).
//     flags: bit 0 texture, bit 2 scaled x, bit 3 scaled y, bits 8..15 SourceLayout, bits 16..23 slot.
//     Tables: prm[table + x] = source x for target column x (prm[table + y] for rows).

layout(local_size_x = 4, local_size_y = 16, local_size_z = 1) in;
layout(constant_id = 0) const bool SIMPLE = false;

const int MAX_TEXTURES = 16;
const uint F_TEXTURE = 1u;
const uint F_SCALED_X = 4u;
const uint F_SCALED_Y = 8u;
const uint LAYOUT_XRGB = 1u;
const uint LAYOUT_RGBX = 2u;
const uint LAYOUT_XBGR = 3u;
const uint LAYOUT_PREMULTIPLIED = 4u;

layout(std430, set = 0, binding = 0) restrict buffer Target { uint px[]; } tgt;
layout(set = 0, binding = 1) uniform usamplerBuffer prm;
layout(set = 0, binding = 4) uniform usamplerBuffer prm4; // the same parameters, 4 words per texel
layout(std430, set = 0, binding = 2) restrict readonly buffer Texture { uint d[]; } tex[MAX_TEXTURES];
// the same descriptors as 16-byte quads (SIMPLE pipeline: every quad it touches starts at a multiple of 4 words)
layout(std430, set = 0, binding = 0) buffer TargetQuads { uvec4 q[]; } tgt4;
layout(std430, set = 0, binding = 2) readonly buffer TextureQuads { uvec4 q[]; } tex4[MAX_TEXTURES];
layout(std140, set = 0, binding = 3) uniform Calls { uvec4 calls[4096]; };

layout(push_constant) uniform Constants
{
    int width;
    int height;
    int tileOffset;
    int tileCount;
} pc;

// x·a/255 rounded, (t + (t >> 8)) >> 8 with t = x·a + 128, for the two bytes of x at bits 0 and 16
// at once (x = 0x00PP00QQ, a ≤ 255): each 16-bit half holds t ≤ 65153 and t + (t >> 8) < 65536,
// so no carry crosses the halves and each result is exactly the per-channel formula
uvec4 mul255x2(uvec4 x, uvec4 a)
{
    uvec4 t = x * a + 0x00800080u;
    return ((t + ((t >> 8) & 0x00FF00FFu)) >> 8) & 0x00FF00FFu;
}

uint word(int i) { return texelFetch(prm, i).x; }

bvec4 and4(bvec4 a, bvec4 b) { return bvec4(uvec4(a) & uvec4(b)); }

// premultiplied source-over, each channel s + d·(255 − sa)/255, saturating
uvec4 blend(uvec4 s, uvec4 c)
{
    uvec4 inv = 255u - (s >> 24);
    uvec4 lo = (s & 0x00FF00FFu) + mul255x2(c & 0x00FF00FFu, inv);
    uvec4 hi = ((s >> 8) & 0x00FF00FFu) + mul255x2((c >> 8) & 0x00FF00FFu, inv);
    lo = (lo | (((lo >> 8) & 0x00010001u) * 0xFFu)) & 0x00FF00FFu;
    hi = (hi | (((hi >> 8) & 0x00010001u) * 0xFFu)) & 0x00FF00FFu;
    return lo | (hi << 8);
}

void main()
{
    // the last row of workgroups may run past the tile list: those do nothing (no return: uniform anyway)
    int tileIndex = int(gl_WorkGroupID.x + gl_WorkGroupID.y * 65535u);
    bool valid = tileIndex < pc.tileCount;
    // the tile record in one 4-word fetch (records start at a multiple of 4 words)
    uvec4 rec = texelFetch(prm4, (pc.tileOffset >> 2) + min(tileIndex, pc.tileCount - 1));
    uint tile = rec.x;
    int entryStart = int(rec.y);
    int entryEnd = valid ? entryStart + int(rec.z) : entryStart;
    bool load = valid && rec.w != 0u;
    int qx0 = int(tile & 0xFFFFu) * 16 + int(gl_LocalInvocationID.x) * 4;
    int qy = int(tile >> 16) * 16 + int(gl_LocalInvocationID.y);
    ivec4 qx = ivec4(qx0) + ivec4(0, 1, 2, 3);
    bvec4 inside = and4(lessThan(qx, ivec4(pc.width)), bvec4(qy < pc.height));
    uint index = uint(qy) * uint(pc.width) + uint(qx0);

    if (SIMPLE)
    {
        // Every entry covers the tile whole and is a fill or a 1:1 undimmed Bgrx/BgraPremultiplied
        // texture whose word index of (x, y) is x modulo 4; the target's width is a multiple of 4.
        // So each quad lies wholly inside or wholly outside the target, and its 4 target words and
        // 4 texture words are one 16-byte access each (lavapipe: one per-lane loop, not four).
        // An entry is the call itself, one 4-word fetch: flags, colour, word of target pixel
        // (0, 0) (texture base + source offset, modulo 2^32), stride in words.
        bool quadInside = inside.x;
        uvec4 c = uvec4(0u);
        if (load && quadInside) c = tgt4.q[index >> 2];
        for (int e = entryStart; e < entryEnd; e++)
        {
            uvec4 call = texelFetch(prm4, e);
            bool isTexture = (call.x & F_TEXTURE) != 0u;
            uint slot = (call.x >> 16) & 0xFFu;
            // fills and quads outside the target read quad 0 of the slot's buffer (always bound) and ignore it
            uint at = isTexture && quadInside ? (call.z + uint(qy) * call.w + uint(qx0)) >> 2 : 0u;
            uvec4 w = tex4[slot].q[at];
            w |= ((call.x >> 8) & 0xFFu) == LAYOUT_PREMULTIPLIED ? 0u : 0xFF000000u;
            uvec4 s = isTexture ? w : uvec4(call.y);
            c = blend(s, c);
        }
        if (quadInside) tgt4.q[index >> 2] = c;
        return;
    }

    uvec4 c = uvec4(0u);
    if (load)
    {
        if (inside.x) c.x = tgt.px[index];
        if (inside.y) c.y = tgt.px[index + 1u];
        if (inside.z) c.z = tgt.px[index + 2u];
        if (inside.w) c.w = tgt.px[index + 3u];
    }
    bvec4 drawn = bvec4(false);

    for (int e = entryStart; e < entryEnd; e++)
    {
        uint head = word(e * 4);
        int k = int(head & 0xFFFFu);
        bvec4 covered = inside;
        if ((head & 0x80000000u) == 0u)
        {
            bvec4 hit = bvec4(false);
            int pieceEnd = int(word(e * 4 + 2));
            for (int j = int(word(e * 4 + 1)); j < pieceEnd; j++)
            {
                int o = j * 4;
                ivec4 rect = ivec4(word(o), word(o + 1), word(o + 2), word(o + 3));
                bool row = qy >= rect.y && qy < rect.w;
                bvec4 h = and4(and4(greaterThanEqual(qx, ivec4(rect.x)), lessThan(qx, ivec4(rect.z))), bvec4(row));
                hit = bvec4(uvec4(hit) | uvec4(h));
            }
            covered = and4(covered, hit);
        }
        uvec4 a = calls[k * 2], b = calls[k * 2 + 1];
        // pixels the call does not draw still compute (masked lanes): clamped into its bounds, their reads stay in range
        ivec4 px = clamp(qx, ivec4(b.z & 0xFFFFu), ivec4(b.z >> 16) - 1);
        int py = clamp(qy, int(b.w & 0xFFFFu), int(b.w >> 16) - 1);
        uint flags = a.x;
        // source coordinate: table entry (scaled axis) or offset (1:1 axis)
        ivec4 sx = px + int(a.z);
        int sy = py + int(a.w);
        if ((flags & F_SCALED_X) != 0u) sx = ivec4(word(int(a.z) + px.x), word(int(a.z) + px.y), word(int(a.z) + px.z), word(int(a.z) + px.w));
        if ((flags & F_SCALED_Y) != 0u) sy = int(word(int(a.w) + py));
        bool isTexture = (flags & F_TEXTURE) != 0u;
        // fills read word 0 of slot 0 (always bound) and ignore it
        uint slot = (flags >> 16) & 0xFFu;
        uvec4 at = isTexture ? uvec4(b.x + uint(sy) * b.y) + uvec4(sx) : uvec4(0u);
        uvec4 w = uvec4(tex[slot].d[at.x], tex[slot].d[at.y], tex[slot].d[at.z], tex[slot].d[at.w]);
        uint srcLayout = (flags >> 8) & 0xFFu;
        // layout → BGRA word: bytes shifted down (Xrgb, Xbgr), R and B swapped (Xrgb, Rgbx), alpha
        // forced to 255 (opaque layouts)
        w >>= (srcLayout == LAYOUT_XRGB || srcLayout == LAYOUT_XBGR) ? 8u : 0u;
        uvec4 swapped = (w & 0xFF00FF00u) | ((w >> 16) & 0xFFu) | ((w & 0xFFu) << 16);
        w = (srcLayout == LAYOUT_XRGB || srcLayout == LAYOUT_RGBX) ? swapped : w;
        w |= srcLayout == LAYOUT_PREMULTIPLIED ? 0u : 0xFF000000u;
        // colour channels times dim/255 (255 leaves them unchanged), alpha kept
        uvec4 dim = uvec4(a.y & 0xFFu);
        w = (mul255x2(w & 0x00FF00FFu, dim) | (mul255x2((w >> 8) & 0x00FF00FFu, dim) << 8) & 0x0000FF00u) | (w & 0xFF000000u);
        uvec4 s = isTexture ? w : uvec4(a.y);
        c = mix(c, blend(s, c), covered);
        drawn = bvec4(uvec4(drawn) | uvec4(covered));
    }
    if (drawn.x) tgt.px[index] = c.x;
    if (drawn.y) tgt.px[index + 1u] = c.y;
    if (drawn.z) tgt.px[index + 2u] = c.z;
    if (drawn.w) tgt.px[index + 3u] = c.w;
}

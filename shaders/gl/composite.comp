#version 450 core
// The OpenGL renderer's one pass (VirtioGpuHost.Compositor.Rendering.OpenGL): every pixel of the
// pass damage is composited in integer arithmetic, exactly as the CPU renderer's ScalarKernels:
//  - sampling: the source coordinate comes from per-call tables the host computed with
//    NearestMapping (64-bit integers; 1:1 calls use an offset), read with texelFetch: no
//    filtering, no float coordinates;
//  - sources: R32UI textures holding the guest's bytes unchanged (one native little-endian u32
//    per pixel), converted per SourceLayout here;
//  - dim and premultiplied source-over: x*a/255 as (t + (t >> 8)) >> 8, t = x*a + 128, saturating;
//  - the target: an RGBA8 texture bound as an rgba8ui image, so loads and stores are exact bytes.
// One invocation per pixel of a 16x16 tile; the host lists the tiles that touch the damage; one
// dispatch per batch of at most 32 calls, 16 textures and 1024 pieces. A
// call covers a pixel when one of its pieces (clip ∩ damage ∩ destination ∩ target, disjoint)
// holds it; calls below the topmost opaque call covering the pixel are skipped (culling).
layout(local_size_x = 16, local_size_y = 16, local_size_z = 1) in;

layout(binding = 0, rgba8ui) uniform restrict uimage2D target;
layout(binding = 0) uniform usampler2D textures[16];

struct Call
{
    ivec4 bounds;      // union of the pieces: x0, y0, x1, y1 (exclusive)
    int kind;          // 0 fill (source-over), 1 opaque texture (replace), 2 premultiplied texture (source-over)
    int slot;          // texture unit of the batch
    int sourceLayout;  // SourceLayout: 0 Bgrx, 1 Xrgb, 2 Rgbx, 3 Xbgr, 4 BgraPremultiplied
    uint dim;          // 255 = unchanged
    uint color;        // fills: premultiplied 0xAARRGGBB
    int pieceStart;
    int pieceCount;
    int tableX;        // scaled: tables[tableX + x - bounds.x] = source x; 1:1 (tableX < 0): source x = x + offsetX
    int tableY;        // scaled: tables[tableY + y - bounds.y] = source y
    int occludes;      // every pixel it draws is opaque whatever was below
    int offsetX;       // 1:1 calls: source.x - destination.x
    int offsetY;
};

// The batch: calls and their pieces in a uniform block (same offsets for every invocation:
// scalar loads on llvmpipe), tiles and source tables in storage buffers.
layout(std140, binding = 0) uniform Batch
{
    Call calls[32];
    ivec4 pieces[1024];
};
layout(std430, binding = 0) readonly buffer Tiles { ivec2 tiles[]; };
layout(std430, binding = 1) readonly buffer Tables { int tables[]; };

layout(location = 1) uniform int callCount;    // calls of this batch, at most 32
layout(location = 2) uniform int tileCount;
layout(location = 3) uniform int tilesPerRow;  // of the dispatch grid (x groups)

bool covers(int c, ivec2 p)
{
    ivec4 b = calls[c].bounds;
    if (p.x < b.x || p.y < b.y || p.x >= b.z || p.y >= b.w) return false;
    int end = calls[c].pieceStart + calls[c].pieceCount;
    for (int i = calls[c].pieceStart; i < end; i++)
    {
        ivec4 r = pieces[i];
        if (p.x >= r.x && p.y >= r.y && p.x < r.z && p.y < r.w) return true;
    }
    return false;
}

uint fetchTexel(int slot, ivec2 s)
{
    // slot is dynamically uniform (the same call for every invocation). Measured on llvmpipe: a
    // switch over constant indices runs every case (2x slower); r32ui images are faster but give
    // wrong texels through a dynamically indexed image array (and every case again in a switch).
    return texelFetch(textures[slot], s, 0).r;
}

// Channels as (b, g, r, a), the byte order of the native u32 0xAARRGGBB.
uvec4 unpackBgra(uint p) { return uvec4(p & 0xFFu, (p >> 8) & 0xFFu, (p >> 16) & 0xFFu, p >> 24); }

uvec4 opaqueBgra(uint p, int sourceLayout)
{
    uvec4 bytes = unpackBgra(p); // b0, b1, b2, b3 as they lie in memory
    if (sourceLayout == 1) return uvec4(bytes.w, bytes.z, bytes.y, 255u);      // X R G B
    if (sourceLayout == 2) return uvec4(bytes.z, bytes.y, bytes.x, 255u);      // R G B X
    if (sourceLayout == 3) return uvec4(bytes.y, bytes.z, bytes.w, 255u);      // X B G R
    return uvec4(bytes.x, bytes.y, bytes.z, 255u);                             // B G R X
}

// x*a/255 rounded: (t + (t >> 8)) >> 8, t = x*a + 128.
uvec3 mul3(uvec3 x, uint a) { uvec3 t = x * a + 128u; return (t + (t >> 8u)) >> 8u; }
uvec4 mul4(uvec4 x, uint a) { uvec4 t = x * a + 128u; return (t + (t >> 8u)) >> 8u; }

uvec4 dimmed(uvec4 c, uint dim) { return dim == 255u ? c : uvec4(mul3(c.xyz, dim), c.w); }

// Premultiplied source-over, each channel s + d*(255 - sa)/255, saturating.
uvec4 over(uvec4 s, uvec4 d) { return min(s + mul4(d, 255u - s.w), uvec4(255u)); }

void main()
{
    int tile = int(gl_WorkGroupID.y) * tilesPerRow + int(gl_WorkGroupID.x);
    if (tile >= tileCount) return;
    ivec2 p = tiles[tile] + ivec2(gl_LocalInvocationID.xy);

    // Front to back: which calls cover the pixel, down to the first opaque one.
    uint mask = 0u;
    bool hidden = false; // an opaque call covers it: what lies below does not matter
    for (int i = callCount - 1; i >= 0; i--)
    {
        if (!covers(i, p)) continue;
        mask |= 1u << uint(i);
        if (calls[i].occludes != 0) { hidden = true; break; }
    }
    if (mask == 0u) return;

    uvec4 c = hidden ? uvec4(0u, 0u, 0u, 255u) : imageLoad(target, p).bgra; // rgba8ui gives (r, g, b, a)
    for (int i = 0; i < callCount; i++)
    {
        if ((mask & (1u << uint(i))) == 0u) continue;
        int k = i;
        int kind = calls[k].kind;
        if (kind == 0)
        {
            c = over(unpackBgra(calls[k].color), c);
            continue;
        }
        ivec4 b = calls[k].bounds;
        ivec2 s = calls[k].tableX < 0
            ? p + ivec2(calls[k].offsetX, calls[k].offsetY)
            : ivec2(tables[calls[k].tableX + p.x - b.x], tables[calls[k].tableY + p.y - b.y]);
        uint texel = fetchTexel(calls[k].slot, s);
        if (kind == 1) c = dimmed(opaqueBgra(texel, calls[k].sourceLayout), calls[k].dim);
        else c = over(dimmed(unpackBgra(texel), calls[k].dim), c);
    }
    imageStore(target, p, c.zyxw); // back to (r, g, b, a)
}

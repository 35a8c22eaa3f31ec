#version 450
// The Vulkan renderer's whole pass (VirtioGpuHost.Compositor.Rendering.Vulkan): one invocation
// per target pixel of the damaged 16x16 tiles applies every draw call of the pass, back to
// front, with the renderer contract's integer arithmetic (IRenderer.cs), so the result is
// bit-exact with the CPU renderer:
//   - the source pixel is read as a raw 32-bit word of the texture's memory (the guest's bytes
//     or a host texture), at the source coordinate the CPU computed with NearestMapping
//     (per-call tables of source x and y; 1:1 axes are an offset), no sampler, no filtering;
//   - opaque layouts are swizzled to B, G, R, 255; dim is x·dim/255; blending is
//     premultiplied source-over; x·a/255 is rounded as (t + (t >> 8)) >> 8, t = x·a + 128.
// Target: premultiplied BGRA words (0xAARRGGBB), row-major, width words per row.
// Parameters (one int buffer): damage rects, tile list, calls (CALL_WORDS each), clip rects,
// source tables; the push constants say where each part starts.

layout(local_size_x = 16, local_size_y = 16, local_size_z = 1) in;

const int MAX_TEXTURES = 16;
const int CALL_WORDS = 12;

// call flags (word 0): bit 0 texture (else fill), bit 2 scaled x, bit 3 scaled y,
// bits 8..15 SourceLayout, bits 16..23 texture slot
const int F_TEXTURE = 1;
const int F_SCALED_X = 4;
const int F_SCALED_Y = 8;
const int LAYOUT_BGRX = 0;
const int LAYOUT_XRGB = 1;
const int LAYOUT_RGBX = 2;
const int LAYOUT_XBGR = 3;
const int LAYOUT_PREMULTIPLIED = 4;

layout(std430, set = 0, binding = 0) restrict buffer Target { uint px[]; } tgt;
layout(std430, set = 0, binding = 1) restrict readonly buffer Params { int p[]; } prm;
layout(std430, set = 0, binding = 2) restrict readonly buffer Texture { uint d[]; } tex[MAX_TEXTURES];

layout(push_constant) uniform Constants
{
    int width;
    int height;
    int damageOffset;
    int damageCount;
    int tileOffset;
    int tileCount;
    int callOffset;
    int callStart;
    int callEnd;
} pc;

uvec4 unpackBytes(uint c) { return (uvec4(c) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu; }
uint packBytes(uvec4 v) { return v.x | (v.y << 8) | (v.z << 16) | (v.w << 24); }

// x·a/255 rounded: (t + (t >> 8)) >> 8, t = x·a + 128 (exact for x, a in 0..255)
uvec4 mul255(uvec4 x, uvec4 a)
{
    uvec4 t = x * a + 128u;
    return (t + (t >> 8)) >> 8;
}

// premultiplied source-over, each channel s + d·(255 − sa)/255, saturating
uvec4 over(uvec4 s, uvec4 d) { return min(s + mul255(d, uvec4(255u - s.w)), uvec4(255u)); }

// colour channels times dim/255, alpha unchanged
uvec4 dimmed(uvec4 c, uint dim)
{
    if (dim == 255u) return c;
    return uvec4(mul255(c, uvec4(dim)).xyz, c.w);
}

bool inRect(ivec2 q, int o)
{
    return q.x >= prm.p[o] && q.y >= prm.p[o + 1] && q.x < prm.p[o + 2] && q.y < prm.p[o + 3];
}

void main()
{
    int tileIndex = int(gl_WorkGroupID.x + gl_WorkGroupID.y * 65535u);
    if (tileIndex >= pc.tileCount) return;
    uint tile = uint(prm.p[pc.tileOffset + tileIndex]);
    ivec2 q = ivec2(int(tile & 0xFFFFu) * 16, int(tile >> 16) * 16) + ivec2(gl_LocalInvocationID.xy);
    if (q.x >= pc.width || q.y >= pc.height) return;

    bool damaged = false;
    for (int i = 0; i < pc.damageCount && !damaged; i++) damaged = inRect(q, pc.damageOffset + i * 4);
    if (!damaged) return;

    uint index = uint(q.y) * uint(pc.width) + uint(q.x);
    uvec4 c = unpackBytes(tgt.px[index]);

    for (int k = pc.callStart; k < pc.callEnd; k++)
    {
        int o = pc.callOffset + k * CALL_WORDS;
        if (!inRect(q, o + 2)) continue; // the call's visible bounds
        int clipStart = prm.p[o + 6], clipEnd = clipStart + prm.p[o + 7];
        bool clipped = true;
        for (int j = clipStart; j < clipEnd && clipped; j++) clipped = !inRect(q, j * 4);
        if (clipped) continue;

        int flags = prm.p[o];
        if ((flags & F_TEXTURE) == 0)
        {
            c = over(unpackBytes(uint(prm.p[o + 1])), c);
            continue;
        }
        int sx = (flags & F_SCALED_X) != 0 ? prm.p[prm.p[o + 8] + q.x - prm.p[o + 2]] : q.x + prm.p[o + 8];
        int sy = (flags & F_SCALED_Y) != 0 ? prm.p[prm.p[o + 9] + q.y - prm.p[o + 3]] : q.y + prm.p[o + 9];
        uint word = uint(prm.p[o + 10]) + uint(sy) * uint(prm.p[o + 11]) + uint(sx);
        int slot = (flags >> 16) & 0xFF;
        uvec4 s = unpackBytes(tex[slot].d[word]);
        uint dim = uint(prm.p[o + 1]);
        int srcLayout = (flags >> 8) & 0xFF;
        if (srcLayout == LAYOUT_PREMULTIPLIED)
        {
            c = over(dimmed(s, dim), c);
        }
        else
        {
            // bytes b0..b3 as read from memory → B, G, R
            uvec3 bgr = srcLayout == LAYOUT_XRGB ? s.wzy : srcLayout == LAYOUT_RGBX ? s.zyx : srcLayout == LAYOUT_XBGR ? s.yzw : s.xyz;
            c = dimmed(uvec4(bgr, 255u), dim);
        }
    }
    tgt.px[index] = packBytes(c);
}

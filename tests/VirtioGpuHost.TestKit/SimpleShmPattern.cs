namespace VirtioGpuHost.TestKit;

/// <summary>
/// What weston-simple-shm draws: its paint_pixels (clients/simple-shm.c, weston 10) is a
/// deterministic function of the frame callback time the compositor sends, so a test that
/// controls the time knows every pixel of the real client's window.
/// </summary>
public static class SimpleShmPattern
{
    /// <summary>The window image for frame time <paramref name="time"/> (ms), as a compositor shows it (xrgb8888 opaque).</summary>
    public static uint[] Expected(int width, int height, uint time)
    {
        const int padding = 20;
        var img = new uint[width * height];
        Array.Fill(img, 0xffffffffu); // the client fills new buffers with 0xff first
        int halfh = padding + (height - padding * 2) / 2;
        int halfw = padding + (width - padding * 2) / 2;
        int or = (halfw < halfh ? halfw : halfh) - 8;
        int ir = or - 32;
        or *= or;
        ir *= ir;
        for (int y = padding; y < height - padding; y++)
        {
            int y2 = (y - halfh) * (y - halfh);
            for (int x = padding; x < width - padding; x++)
            {
                int r2 = (x - halfw) * (x - halfw) + y2;
                uint v;
                // C: int + uint32_t is computed in uint32_t.
                if (r2 < ir) v = unchecked(((uint)(r2 / 32) + time / 64) * 0x0080401u);
                else if (r2 < or) v = unchecked(((uint)y + time / 32) * 0x0080401u);
                else v = unchecked(((uint)x + time / 16) * 0x0080401u);
                v &= 0x00ffffff;
                img[y * width + x] = v | 0xff000000u; // X of XRGB is not alpha: shown opaque
            }
        }
        return img;
    }
}

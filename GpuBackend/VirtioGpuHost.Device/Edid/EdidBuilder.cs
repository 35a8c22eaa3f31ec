using System.Text;

namespace VirtioGpuHost.Device.Edid;

/// <summary>
/// Builds an EDID 1.4 base block (VESA E-EDID) for one display mode: the preferred detailed
/// timing uses CVT reduced blanking (v1) timings, plus range limits and a monitor name, so
/// that Linux (and edid-decode) accept it. 128 bytes, checksum included.
/// </summary>
public static class EdidBuilder
{
    public const int BlockSize = 128;

    /// <summary>Manufacturer id "VGH" (5-bit letters; not a registered PNP id).</summary>
    private const string Manufacturer = "VGH";

    public static byte[] Build(uint width, uint height, uint refreshHz = 60, string name = "VirtioGpuHost", uint serial = 0)
    {
        if (width is 0 or > 4095 || height is 0 or > 4095)
            throw new ArgumentOutOfRangeException(nameof(width), $"{width}x{height}: an EDID detailed timing holds at most 4095x4095");
        if (refreshHz is < 24 or > 240) throw new ArgumentOutOfRangeException(nameof(refreshHz));
        var e = new byte[BlockSize];
        // Header.
        e[0] = 0x00; for (int i = 1; i <= 6; i++) e[i] = 0xFF; e[7] = 0x00;
        // Manufacturer (big-endian, 3 x 5 bits), product code, serial, week, year.
        ushort mfg = (ushort)(((Manufacturer[0] - 'A' + 1) << 10) | ((Manufacturer[1] - 'A' + 1) << 5) | (Manufacturer[2] - 'A' + 1));
        e[8] = (byte)(mfg >> 8); e[9] = (byte)mfg;
        e[10] = 0x01; e[11] = 0x00;                  // product code 1
        e[12] = (byte)serial; e[13] = (byte)(serial >> 8); e[14] = (byte)(serial >> 16); e[15] = (byte)(serial >> 24);
        e[16] = 1; e[17] = 2026 - 1990;              // week 1 of 2026
        e[18] = 1; e[19] = 4;                        // EDID 1.4
        e[20] = 0xA5;                                // digital, 8 bits per colour, DisplayPort
        // Physical size in cm, as if 96 dpi (a plausible desktop panel).
        e[21] = (byte)Math.Clamp(width * 254 / 96 / 100, 1, 255);
        e[22] = (byte)Math.Clamp(height * 254 / 96 / 100, 1, 255);
        e[23] = 120;                                 // gamma 2.2
        e[24] = 0x06;                                // RGB 4:4:4, sRGB default, preferred timing is native
        // sRGB chromaticity (as in QEMU's edid-generate.c): R(0.640,0.330) G(0.300,0.600) B(0.150,0.060) W(0.3127,0.3290).
        WriteChromaticity(e.AsSpan(25), 0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290);
        e[35] = 0x21; e[36] = 0x08; e[37] = 0x00;    // established: 640x480@60, 800x600@60, 1024x768@60
        for (int i = 38; i < 54; i++) e[i] = 0x01;   // no standard timings

        var t = WithMinimumPixelClock(CvtReducedBlanking(width, height, refreshHz), refreshHz);
        WriteDetailedTiming(e.AsSpan(54, 18), t);
        WriteRangeLimits(e.AsSpan(72, 18), t);
        WriteTextDescriptor(e.AsSpan(90, 18), 0xFC, name);
        WriteTextDescriptor(e.AsSpan(108, 18), 0xFF, $"VGH{serial:D8}");
        e[126] = 0;                                  // no extension blocks
        e[127] = Checksum(e);
        return e;
    }

    /// <summary>The byte that makes the 128 bytes sum to 0 mod 256.</summary>
    public static byte Checksum(ReadOnlySpan<byte> block)
    {
        int sum = 0;
        for (int i = 0; i < BlockSize - 1; i++) sum += block[i];
        return (byte)(256 - sum % 256);
    }

    /// <summary>A detailed timing (pixel clock in kHz).</summary>
    public readonly record struct Timing(uint Width, uint Height, uint HBlank, uint HFront, uint HSync, uint VBlank, uint VFront, uint VSync, uint PixelClockKHz)
    {
        public double RefreshHz => PixelClockKHz * 1000.0 / ((Width + HBlank) * (double)(Height + VBlank));
    }

    /// <summary>CVT 1.2 reduced blanking v1: 160-pixel horizontal blank, ≥ 460 µs vertical blank.</summary>
    public static Timing CvtReducedBlanking(uint width, uint height, uint refreshHz)
    {
        const uint hBlank = 160, hFront = 48, hSync = 32, vFront = 3, minVBackPorch = 6;
        const double minVBlankUs = 460.0;
        uint vSync = VSyncLines(width, height);
        double hPeriodUs = (1_000_000.0 / refreshHz - minVBlankUs) / height;
        uint vBlank = (uint)Math.Ceiling(minVBlankUs / hPeriodUs) + 1;
        vBlank = Math.Max(vBlank, vFront + vSync + minVBackPorch);
        uint hTotal = width + hBlank;
        uint vTotal = height + vBlank;
        // Pixel clock rounded down to a 250 kHz step, as CVT does.
        double clockKHz = hTotal * (double)vTotal * refreshHz / 1000.0;
        uint clock = (uint)(Math.Floor(clockKHz / 250.0) * 250.0);
        return new Timing(width, height, hBlank, hFront, hSync, vBlank, vFront, vSync, Math.Max(clock, 10));
    }

    /// <summary>EDID detailed timings start at 10 MHz (below that edid-decode and the spec call the descriptor invalid).</summary>
    public const uint MinPixelClockKHz = 10_000;

    /// <summary>
    /// Small modes (e.g. 320x240@60) have a CVT-RB pixel clock under 10 MHz: stretch the
    /// vertical blank (a virtual display does not care, and the line rate stays plausible)
    /// until the clock reaches 10 MHz at the same refresh rate. Any 1..4095 line mode at
    /// 24 Hz or more fits the 12-bit blank field.
    /// </summary>
    private static Timing WithMinimumPixelClock(Timing t, uint refreshHz)
    {
        if (t.PixelClockKHz >= MinPixelClockKHz) return t;
        uint hTotal = t.Width + t.HBlank;
        uint vTotal = (uint)Math.Ceiling(MinPixelClockKHz * 1000.0 / ((double)hTotal * refreshHz));
        uint vBlank = Math.Max(t.VBlank, vTotal - t.Height);
        uint clock = (uint)Math.Ceiling(hTotal * (double)(t.Height + vBlank) * refreshHz / 10_000.0) * 10; // 10 kHz units
        return t with { VBlank = vBlank, PixelClockKHz = Math.Max(clock, MinPixelClockKHz) };
    }

    private static uint VSyncLines(uint w, uint h)
    {
        // CVT's aspect-ratio table for the vertical sync width.
        if (w * 3 == h * 4) return 4;
        if (w * 9 == h * 16) return 5;
        if (w * 10 == h * 16) return 6;
        if (w * 4 == h * 5) return 7;
        if (w * 9 == h * 15) return 7;
        return 10;
    }

    /// <summary>True when the timing's pixel clock fits a detailed timing descriptor (at most 655.35 MHz).</summary>
    public static bool FitsDetailedTiming(Timing t) => t.PixelClockKHz / 10 <= 0xFFFF;

    /// <summary>
    /// The highest refresh rate in 24..<paramref name="refreshHz"/> (clamped to 24..240) whose
    /// CVT-RB timing for width x height fits a detailed timing; fast modes (e.g.
    /// 3840x2160@120) get a lower rate instead of an EDID that cannot be encoded.
    /// </summary>
    public static uint FittingRefreshHz(uint width, uint height, uint refreshHz)
    {
        uint hz = Math.Clamp(refreshHz, 24, 240);
        while (hz > 24 && !FitsDetailedTiming(CvtReducedBlanking(width, height, hz))) hz--;
        return hz;
    }

    private static void WriteDetailedTiming(Span<byte> d, Timing t)
    {
        uint clock10k = t.PixelClockKHz / 10;
        if (clock10k > 0xFFFF) throw new ArgumentOutOfRangeException(nameof(t), "pixel clock above 655.35 MHz does not fit a detailed timing");
        d[0] = (byte)clock10k; d[1] = (byte)(clock10k >> 8);
        d[2] = (byte)t.Width; d[3] = (byte)t.HBlank; d[4] = (byte)(((t.Width >> 8) << 4) | (t.HBlank >> 8));
        d[5] = (byte)t.Height; d[6] = (byte)t.VBlank; d[7] = (byte)(((t.Height >> 8) << 4) | (t.VBlank >> 8));
        d[8] = (byte)t.HFront; d[9] = (byte)t.HSync;
        d[10] = (byte)(((t.VFront & 0xF) << 4) | (t.VSync & 0xF));
        d[11] = (byte)(((t.HFront >> 8) << 6) | ((t.HSync >> 8) << 4) | ((t.VFront >> 4) << 2) | (t.VSync >> 4));
        uint wmm = Math.Max(1, t.Width * 254 / 960), hmm = Math.Max(1, t.Height * 254 / 960); // 96 dpi, in mm (never 0 = "not set")
        d[12] = (byte)wmm; d[13] = (byte)hmm; d[14] = (byte)(((wmm >> 8) << 4) | (hmm >> 8));
        d[15] = 0; d[16] = 0;
        d[17] = 0x1A; // digital separate sync, +hsync -vsync (CVT-RB polarity)
    }

    private static void WriteRangeLimits(Span<byte> d, Timing t)
    {
        d.Clear();
        d[3] = 0xFD;
        uint hKHz = (uint)Math.Ceiling(t.PixelClockKHz / (double)(t.Width + t.HBlank));
        d[5] = 24; d[6] = (byte)Math.Min(255, Math.Max(75, (uint)Math.Ceiling(t.RefreshHz) + 1)); // vertical Hz
        d[7] = 15; d[8] = (byte)Math.Min(255, Math.Max(hKHz + 1, 80));                            // horizontal kHz
        d[9] = (byte)Math.Min(255, (t.PixelClockKHz + 9999) / 10000 + 1);                           // max clock / 10 MHz
        d[10] = 0x01;                                                                              // range limits only
        d[11] = 0x0A; for (int i = 12; i < 18; i++) d[i] = 0x20;
    }

    private static void WriteTextDescriptor(Span<byte> d, byte tag, string text)
    {
        d.Clear();
        d[3] = tag;
        var bytes = Encoding.ASCII.GetBytes(text.Length > 13 ? text[..13] : text);
        for (int i = 0; i < 13; i++) d[5 + i] = i < bytes.Length ? bytes[i] : (i == bytes.Length ? (byte)0x0A : (byte)0x20);
    }

    private static void WriteChromaticity(Span<byte> c, double rx, double ry, double gx, double gy, double bx, double by, double wx, double wy)
    {
        int R(double v) => (int)Math.Round(v * 1024);
        int[] v = [R(rx), R(ry), R(gx), R(gy), R(bx), R(by), R(wx), R(wy)];
        c[0] = (byte)(((v[0] & 3) << 6) | ((v[1] & 3) << 4) | ((v[2] & 3) << 2) | (v[3] & 3));
        c[1] = (byte)(((v[4] & 3) << 6) | ((v[5] & 3) << 4) | ((v[6] & 3) << 2) | (v[7] & 3));
        for (int i = 0; i < 8; i++) c[2 + i] = (byte)(v[i] >> 2);
    }

    /// <summary>Reads back the preferred mode from an EDID base block (for tests and logs).</summary>
    public static (uint Width, uint Height, double RefreshHz)? ParsePreferredMode(ReadOnlySpan<byte> edid)
    {
        if (edid.Length < BlockSize || edid[0] != 0 || edid[1] != 0xFF || edid[7] != 0) return null;
        var d = edid.Slice(54, 18);
        uint clock = (uint)(d[0] | d[1] << 8) * 10;
        if (clock == 0) return null;
        uint w = (uint)(d[2] | (d[4] >> 4) << 8), hb = (uint)(d[3] | (d[4] & 0xF) << 8);
        uint h = (uint)(d[5] | (d[7] >> 4) << 8), vb = (uint)(d[6] | (d[7] & 0xF) << 8);
        return (w, h, clock * 1000.0 / ((w + hb) * (double)(h + vb)));
    }
}

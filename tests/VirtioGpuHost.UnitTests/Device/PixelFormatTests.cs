using System.Buffers.Binary;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// Pixel formats: byte order per format (names give the order in memory), conversion to the
/// B,G,R,A bytes displays read on the vectorised and scalar paths, and end to end: the console
/// shows the colour the guest meant for every format.
/// </summary>
public class PixelFormatTests
{
    public static TheoryData<VirtioGpuFormat> AllFormats => new(PixelFormats.All);

    /// <summary>Memory byte order of each format, written out independently of the product code.</summary>
    private static readonly Dictionary<VirtioGpuFormat, string> Order = new()
    {
        [VirtioGpuFormat.B8G8R8A8Unorm] = "BGRA",
        [VirtioGpuFormat.B8G8R8X8Unorm] = "BGRX",
        [VirtioGpuFormat.A8R8G8B8Unorm] = "ARGB",
        [VirtioGpuFormat.X8R8G8B8Unorm] = "XRGB",
        [VirtioGpuFormat.R8G8B8A8Unorm] = "RGBA",
        [VirtioGpuFormat.X8B8G8R8Unorm] = "XBGR",
        [VirtioGpuFormat.A8B8G8R8Unorm] = "ABGR",
        [VirtioGpuFormat.R8G8B8X8Unorm] = "RGBX",
    };

    private static byte Channel(uint argb, char c) => c switch
    {
        'A' or 'X' => (byte)(argb >> 24),
        'R' => (byte)(argb >> 16),
        'G' => (byte)(argb >> 8),
        _ => (byte)argb,
    };

    /// <summary>Encodes a colour in a format's byte order (reference implementation for the tests).</summary>
    private static byte[] Encode(VirtioGpuFormat f, uint argb) => Order[f].Select(c => Channel(argb, c)).ToArray();

    /// <summary>Decodes one pixel of a format to 0xAARRGGBB; X formats read as opaque.</summary>
    private static uint Decode(VirtioGpuFormat f, ReadOnlySpan<byte> px)
    {
        uint a = 0xFF, r = 0, g = 0, b = 0;
        for (int i = 0; i < 4; i++)
        {
            switch (Order[f][i])
            {
                case 'A': a = px[i]; break;
                case 'R': r = px[i]; break;
                case 'G': g = px[i]; break;
                case 'B': b = px[i]; break;
            }
        }
        return a << 24 | r << 16 | g << 8 | b;
    }

    [Fact]
    public void All_ListsTheEightSpecFormats()
    {
        Assert.Equal(
            new uint[] { 1, 2, 3, 4, 67, 68, 121, 134 },
            PixelFormats.All.Select(f => (uint)f).Order());
        Assert.All(PixelFormats.All, f => Assert.True(PixelFormats.IsSupported(f)));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(5u)]
    [InlineData(100u)]
    [InlineData(135u)]
    public void IsSupported_OtherValues_False(uint format) => Assert.False(PixelFormats.IsSupported((VirtioGpuFormat)format));

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void HasAlphaAndBgrxLayout_MatchFormatName(VirtioGpuFormat f)
    {
        Assert.Equal(Order[f].Contains('A'), PixelFormats.HasAlpha(f));
        Assert.Equal(Order[f].StartsWith("BGR", StringComparison.Ordinal), PixelFormats.IsBgrxLayout(f));
    }

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void WriteArgb_EachFormat_BytesInNamedOrder(VirtioGpuFormat f)
    {
        var px = new byte[4];
        PixelFormats.WriteArgb(f, 0x11223344, px);
        Assert.Equal(Encode(f, 0x11223344), px);
    }

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void ReadArgb_EachFormat_RoundTripsAndXFormatsAreOpaque(VirtioGpuFormat f)
    {
        foreach (uint argb in new uint[] { 0x11223344, 0x00FFFFFF, 0xFF000000, 0x80402010, 0 })
        {
            var px = new byte[4];
            PixelFormats.WriteArgb(f, argb, px);
            uint want = PixelFormats.HasAlpha(f) ? argb : argb | 0xFF000000;
            Assert.Equal(want, PixelFormats.ReadArgb(f, px));
            Assert.Equal(want, Decode(f, Encode(f, argb)));
        }
    }

    [Fact]
    public void DrmFourcc_EachFormat_MatchesByteOrder()
    {
        // DRM fourccs name a little-endian u32 from the most significant byte: XRGB8888 is B,G,R,X in memory.
        var expected = new Dictionary<VirtioGpuFormat, string>
        {
            [VirtioGpuFormat.B8G8R8A8Unorm] = "AR24", [VirtioGpuFormat.B8G8R8X8Unorm] = "XR24",
            [VirtioGpuFormat.A8R8G8B8Unorm] = "BA24", [VirtioGpuFormat.X8R8G8B8Unorm] = "BX24",
            [VirtioGpuFormat.R8G8B8A8Unorm] = "AB24", [VirtioGpuFormat.R8G8B8X8Unorm] = "XB24",
            [VirtioGpuFormat.A8B8G8R8Unorm] = "RA24", [VirtioGpuFormat.X8B8G8R8Unorm] = "RX24",
        };
        foreach (var (f, cc) in expected)
        {
            var bytes = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, PixelFormats.DrmFourcc(f));
            Assert.Equal(cc, System.Text.Encoding.ASCII.GetString(bytes));
        }
        Assert.Equal(0u, PixelFormats.DrmFourcc((VirtioGpuFormat)5));
    }

    public static TheoryData<VirtioGpuFormat, int, bool> ConvertCases()
    {
        var d = new TheoryData<VirtioGpuFormat, int, bool>();
        foreach (var f in PixelFormats.All)
            foreach (int w in new[] { 1, 3, 7, 8, 9, 15, 16, 17, 64, 67 })
                foreach (bool opaque in new[] { false, true })
                    d.Add(f, w, opaque);
        return d;
    }

    [Theory]
    [MemberData(nameof(ConvertCases))]
    public void ConvertRowToBgra_VectorAndScalarPaths_MatchReference(VirtioGpuFormat f, int width, bool opaque)
    {
        var src = RandomBytes(width * 4, width * 31 + (int)f);
        var dst = new byte[width * 4 + 8];
        dst.AsSpan().Fill(0xCD);
        PixelFormats.ConvertRowToBgra(f, src, dst, opaque);
        for (int i = 0; i < width; i++)
        {
            uint argb = Decode(f, src.AsSpan(i * 4, 4));
            if (opaque) argb |= 0xFF000000;
            uint got = BinaryPrimitives.ReadUInt32LittleEndian(dst.AsSpan(i * 4));
            Assert.True(argb == got, $"{f} width {width} pixel {i}: want 0x{argb:x8}, got 0x{got:x8}");
        }
        Assert.All(dst[(width * 4)..], b => Assert.Equal(0xCD, b)); // nothing written past the row
    }

    [Fact]
    public void ConvertRowToBgra_DestinationShorter_Throws()
    {
        Assert.Throws<ArgumentException>(() => PixelFormats.ConvertRowToBgra(VirtioGpuFormat.B8G8R8A8Unorm, new byte[16], new byte[12], false));
    }

    [Fact]
    public void ConvertRowToBgra_UnsupportedFormat_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PixelFormats.ConvertRowToBgra((VirtioGpuFormat)5, new byte[4], new byte[4], false));
        Assert.Throws<ArgumentOutOfRangeException>(() => PixelFormats.WriteArgb((VirtioGpuFormat)5, 0, new byte[4]));
    }

    /// <summary>End to end: the guest paints in each format, and the display's console shows the colour it meant.</summary>
    [Theory]
    [MemberData(nameof(AllFormats))]
    public void Console_EachFormat_ShowsTheColourTheGuestMeant(VirtioGpuFormat f)
    {
        using var rig = DeviceRig.Create();
        // 37 wide: vectorised chunks of 8 pixels plus a 5-pixel scalar tail per row.
        uint w = 37, h = 11;
        uint Meant(uint x, uint y) => (x * 7 & 0xFF) << 24 | Colour(x, y) & 0xFFFFFF;
        var fb = rig.NewFrameBuffer(1, w, h, f, scattered: true);
        fb.Fill(Meant);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, w, h), 0).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, w, h)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, w, h), Meant), rig.Display.Console(0));

        // A flushed partial rect with a narrow (scalar-only) and a wide part.
        fb.FillRect(1, 2, 3, 4, 0x12ABCDEF);
        fb.FillRect(4, 6, 30, 2, 0x7F102030);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, w, h), 0).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, new VirtioGpuRect(1, 2, 33, 6)).Is(VirtioGpuCtrlType.OkNoData);
        uint Now(uint x, uint y) =>
            x >= 4 && x < 34 && y >= 6 && y < 8 ? 0x7F102030 :
            x >= 1 && x < 4 && y >= 2 && y < 6 ? 0x12ABCDEF : Meant(x, y);
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, w, h), Now), rig.Display.Console(0));
    }
}

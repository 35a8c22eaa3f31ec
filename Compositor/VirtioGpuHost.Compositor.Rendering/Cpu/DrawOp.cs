using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>What a recorded call does to each visible pixel (decided at Submit from the texture's binding).</summary>
internal enum OpKind : byte
{
    /// <summary>Opaque colour: store.</summary>
    FillOpaque,
    /// <summary>Translucent colour: source-over.</summary>
    FillBlend,
    /// <summary>Opaque texture, same width: convert (and dim) row by row.</summary>
    Copy,
    /// <summary>Opaque texture, other width: the same through the source-x table.</summary>
    CopyScaled,
    /// <summary>Premultiplied texture, same width: source-over.</summary>
    Blend,
    /// <summary>Premultiplied texture, other width: source-over through the source-x table.</summary>
    BlendScaled,
}

/// <summary>One recorded call of a pass, plus what Submit works out for it.</summary>
internal struct DrawOp
{
    public OpKind Kind;
    public CpuTexture? Texture;
    public RectI Source;
    /// <summary>As the caller gave it (may reach outside the target).</summary>
    public RectI Destination;
    /// <summary>Destination ∩ target.</summary>
    public RectI Visible;
    public uint Color;
    public byte Dim;

    /// <summary>The call's clip rectangles (already ∩ <see cref="Visible"/>) in the pass's clip list.</summary>
    public int ClipStart, ClipCount;

    /// <summary>What is left to draw after damage and culling, in the pass's piece list.</summary>
    public int PieceStart, PieceCount;

    /// <summary>Scaled calls: the source-x table covers destination x from <see cref="TableX0"/> (<see cref="TableWidth"/> entries) at <see cref="TableOffset"/>.</summary>
    public int TableOffset, TableX0, TableWidth;

    /// <summary>The texture's pixels as bound at Submit.</summary>
    public nint Base;
    public int Stride;
    /// <summary>The texture's width: how far a row may be read.</summary>
    public int SourceWidth;
    public SourceLayout Layout;

    /// <summary>1:1 blends of a texture with a tile map: its classes (a byte* as nint) and tiles per row.</summary>
    public nint Tiles;
    public int TileColumns;

    /// <summary>Whether every pixel it draws ends up opaque whatever was below (so it hides earlier calls).</summary>
    public readonly bool Occludes => Kind is OpKind.FillOpaque or OpKind.Copy or OpKind.CopyScaled;

    public readonly bool Scaled => Kind is OpKind.CopyScaled or OpKind.BlendScaled;
}

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// A segment register: the visible selector and the hidden descriptor cache. <see cref="Attributes"/> uses
/// the VMX access-rights layout: bits 0–3 type, 4 S, 5–6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G.
/// </summary>
internal struct SegmentState
{
    public const ushort AttrS = 1 << 4;
    public const ushort AttrP = 1 << 7;
    public const ushort AttrL = 1 << 13;
    public const ushort AttrDb = 1 << 14;
    public const ushort AttrG = 1 << 15;

    public ushort Selector;
    public ulong Base;
    public uint Limit;
    public ushort Attributes;

    public readonly int Dpl => (Attributes >> 5) & 3;

    public readonly int Type => Attributes & 0xF;

    /// <summary>Decodes an 8-byte GDT/LDT descriptor (the base's upper 32 bits of a 16-byte system descriptor are added by the caller).</summary>
    public static SegmentState FromDescriptor(ushort selector, ulong descriptor)
    {
        var baseAddress = ((descriptor >> 16) & 0xFF_FFFF) | (((descriptor >> 56) & 0xFF) << 24);
        var rawLimit = (uint)((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000));
        var attributes = (ushort)(((descriptor >> 40) & 0xFF) | (((descriptor >> 52) & 0xF) << 12));
        var granular = (attributes & AttrG) != 0;
        return new SegmentState
        {
            Selector = selector,
            Base = baseAddress,
            Limit = granular ? (rawLimit << 12) | 0xFFF : rawLimit,
            Attributes = attributes,
        };
    }
}

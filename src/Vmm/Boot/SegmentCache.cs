namespace Hypervisor.Vmm.Boot;

/// <summary>
/// The hidden part of a segment register as a VMM loads it (KVM's <c>kvm_segment</c>): selector plus the
/// descriptor fields, limit already scaled by granularity.
/// </summary>
/// <param name="Selector">The selector (GDT index × 8).</param>
/// <param name="Base">Linear base address.</param>
/// <param name="Limit">Byte-granular limit (0xFFFFFFFF for a flat 4 GiB segment).</param>
/// <param name="Type">The 4-bit descriptor type (0xB = code execute/read accessed, 0x3 = data read/write accessed, 0xB with S = 0 = busy 64-bit TSS).</param>
/// <param name="Present">P bit.</param>
/// <param name="Dpl">Descriptor privilege level.</param>
/// <param name="DefaultBig">D/B bit (32-bit default operand size).</param>
/// <param name="CodeOrData">S bit: code/data rather than system.</param>
/// <param name="LongMode">L bit (64-bit code).</param>
/// <param name="Granularity">G bit (limit in 4 KiB units in the descriptor).</param>
public readonly record struct SegmentCache(
    ushort Selector,
    ulong Base,
    uint Limit,
    byte Type,
    bool Present,
    byte Dpl,
    bool DefaultBig,
    bool CodeOrData,
    bool LongMode,
    bool Granularity)
{
    /// <summary>Decodes a GDT descriptor into the cache a CPU loads for <paramref name="selector"/>.</summary>
    /// <param name="selector">The selector that names the descriptor.</param>
    /// <param name="descriptor">The 8-byte descriptor.</param>
    public static SegmentCache FromDescriptor(ushort selector, ulong descriptor)
    {
        var baseAddress = ((descriptor >> 16) & 0xFF_FFFF) | (((descriptor >> 56) & 0xFF) << 24);
        var rawLimit = (uint)((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000));
        var granularity = ((descriptor >> 55) & 1) != 0;
        return new SegmentCache(
            selector,
            baseAddress,
            granularity ? (rawLimit << 12) | 0xFFF : rawLimit,
            (byte)((descriptor >> 40) & 0xF),
            ((descriptor >> 47) & 1) != 0,
            (byte)((descriptor >> 45) & 3),
            ((descriptor >> 54) & 1) != 0,
            ((descriptor >> 44) & 1) != 0,
            ((descriptor >> 53) & 1) != 0,
            granularity);
    }
}

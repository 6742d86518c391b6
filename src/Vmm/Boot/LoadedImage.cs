namespace Hypervisor.Vmm.Boot;

/// <summary>An image placed in guest memory by <see cref="IBootImage.Load"/>, with its entry points.</summary>
/// <param name="Segments">The segments written, in load order.</param>
/// <param name="Is64Bit">True for an ELF64 image.</param>
/// <param name="ElfEntry">e_entry: the RIP of a direct 64-bit boot; for a bzImage, its 64-bit entry (load address + 0x200).</param>
/// <param name="PvhEntry">The 32-bit PVH entry from the Xen note, or null.</param>
/// <param name="MultibootEntry">The multiboot entry (entry_addr with address fields, else e_entry), or null.</param>
/// <param name="LowestGpa">The lowest guest-physical address written.</param>
/// <param name="EndGpa">One past the highest guest-physical address written (bss included), or reserved (a bzImage's init_size).</param>
/// <param name="LinuxHeader">A bzImage's setup header, for the Linux boot protocol's zero page; null for an ELF image.</param>
public sealed record LoadedImage(
    IReadOnlyList<ElfSegment> Segments,
    bool Is64Bit,
    ulong ElfEntry,
    uint? PvhEntry,
    uint? MultibootEntry,
    ulong LowestGpa,
    ulong EndGpa,
    LinuxSetupHeader? LinuxHeader = null)
{
    /// <summary>True when <c>[start, end)</c> overlaps a loaded segment.</summary>
    /// <param name="start">Inclusive start.</param>
    /// <param name="end">Exclusive end.</param>
    public bool Overlaps(ulong start, ulong end) =>
        Segments.Any(s => s.PhysicalAddress < end && start < s.PhysicalEnd);
}

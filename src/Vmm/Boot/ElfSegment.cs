namespace Hypervisor.Vmm.Boot;

/// <summary>
/// One segment to place in guest memory: <see cref="FileSize"/> bytes from the file at <see cref="Offset"/>
/// copied to <see cref="PhysicalAddress"/>, then zeros up to <see cref="MemorySize"/>.
/// </summary>
/// <param name="Index">Program-header index of the PT_LOAD segment, -1 for the multiboot address-field segment, or <see cref="ElfSegment.BzImageKernelIndex"/>.</param>
/// <param name="Offset">File offset of the first byte (p_offset).</param>
/// <param name="VirtualAddress">Link-time virtual address (p_vaddr).</param>
/// <param name="PhysicalAddress">Guest-physical load address (p_paddr).</param>
/// <param name="FileSize">Bytes taken from the file (p_filesz).</param>
/// <param name="MemorySize">Bytes occupied in memory, the tail zero-filled (p_memsz).</param>
/// <param name="Flags">p_flags (PF_X = 1, PF_W = 2, PF_R = 4).</param>
public readonly record struct ElfSegment(
    int Index,
    ulong Offset,
    ulong VirtualAddress,
    ulong PhysicalAddress,
    ulong FileSize,
    ulong MemorySize,
    uint Flags)
{
    /// <summary>The <see cref="Index"/> of a bzImage's protected-mode kernel, which spans init_size.</summary>
    public const int BzImageKernelIndex = -2;

    /// <summary>Exclusive end of the segment in guest-physical memory.</summary>
    public ulong PhysicalEnd => PhysicalAddress + MemorySize;

    /// <summary>Exclusive end of the segment in virtual memory.</summary>
    public ulong VirtualEnd => VirtualAddress + MemorySize;

    /// <summary>True when <paramref name="gpa"/> lies in <c>[PhysicalAddress, PhysicalEnd)</c>.</summary>
    public bool ContainsPhysical(ulong gpa) => gpa >= PhysicalAddress && gpa - PhysicalAddress < MemorySize;

    /// <summary>True when <paramref name="va"/> lies in <c>[VirtualAddress, VirtualEnd)</c>.</summary>
    public bool ContainsVirtual(ulong va) => va >= VirtualAddress && va - VirtualAddress < MemorySize;

    /// <summary>A short name for messages: "PT_LOAD segment 2", "multiboot address-field segment" or "bzImage kernel".</summary>
    public string Name => Index switch
    {
        >= 0 => $"PT_LOAD segment {Index}",
        BzImageKernelIndex => "bzImage kernel",
        _ => "multiboot address-field segment",
    };

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} [0x{PhysicalAddress:x}, 0x{PhysicalEnd:x})";
}

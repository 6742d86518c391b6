namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The random choices for one program header of a generated ELF image.</summary>
/// <param name="Type">p_type (ignored in a sequential layout, which uses PT_LOAD).</param>
/// <param name="PhysicalAddress">p_paddr (ignored in a sequential layout).</param>
/// <param name="VirtualAddress">p_vaddr, or null for p_paddr.</param>
/// <param name="DataLength">p_filesz as written: bytes of data.</param>
/// <param name="MemoryExtra">p_memsz − p_filesz (wrapping).</param>
/// <param name="Shrink">True for p_memsz = p_filesz / 2, which breaks p_filesz ≤ p_memsz.</param>
/// <param name="FileSize">A p_filesz overriding the data's length, or null.</param>
/// <param name="Offset">A p_offset overriding the builder's, or null.</param>
/// <param name="Gap">Bytes left free after the segment in a sequential layout.</param>
internal sealed record ElfSegmentRecipe(
    uint Type, ulong PhysicalAddress, ulong? VirtualAddress, int DataLength, ulong MemoryExtra, bool Shrink, ulong? FileSize, ulong? Offset, ulong Gap);

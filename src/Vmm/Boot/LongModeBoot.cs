using System.Buffers.Binary;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// Direct 64-bit entry, Firecracker style: the VMM writes a GDT, an empty IDT and identity-mapping page
/// tables, and starts the vCPU in long mode at the ELF entry.
/// </summary>
/// <remarks>
/// Layout (Firecracker <c>arch/x86_64/regs.rs</c>): GDT at 0x500 (null, 64-bit code 0x08, data 0x10, TSS
/// 0x18), IDT at 0x520, PML4 at 0x9000 → PDPT at 0xA000 → PD at 0xB000 with 512 × 2 MiB pages (P|RW|PS),
/// identity-mapping the first 1 GiB.
/// </remarks>
public static class LongModeBoot
{
    /// <summary>Guest-physical address of the GDT.</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Guest-physical address of the (empty, one-entry) IDT.</summary>
    public const ulong IdtAddress = 0x520;

    /// <summary>Guest-physical address of the PML4; CR3 holds it.</summary>
    public const ulong Pml4Address = 0x9000;

    /// <summary>Guest-physical address of the PDPT.</summary>
    public const ulong PdptAddress = 0xA000;

    /// <summary>Guest-physical address of the page directory.</summary>
    public const ulong PdAddress = 0xB000;

    /// <summary>Bytes identity-mapped by the page tables (1 GiB).</summary>
    public const ulong IdentityMappedSize = 1UL << 30;

    /// <summary>Flags of every PD entry: present, writable, 2 MiB page.</summary>
    public const ulong LargePageFlags = 0x83;

    /// <summary>Code segment selector.</summary>
    public const ushort CodeSelector = 0x08;

    /// <summary>Data segment selector.</summary>
    public const ushort DataSelector = 0x10;

    /// <summary>TSS selector.</summary>
    public const ushort TssSelector = 0x18;

    /// <summary>Firecracker's boot stack pointer, just below the PML4.</summary>
    public const ulong DefaultStackTop = 0x8FF0;

    private const int PageSize = 4096;

    /// <summary>The four GDT descriptors: null, 64-bit code, data, busy TSS.</summary>
    public static ulong[] Gdt() =>
        [0, GdtEntry.Create(0xA09B, 0, 0xFFFFF), GdtEntry.Create(0xC093, 0, 0xFFFFF), GdtEntry.Create(0x808B, 0, 0xFFFFF)];

    /// <summary>The page tables as one 12 KiB block to write at <see cref="Pml4Address"/>: PML4, PDPT, PD.</summary>
    public static byte[] PageTables() => PageTables(1);

    /// <summary>
    /// Page tables identity-mapping the first <paramref name="gibibytes"/> GiB with 2 MiB pages, as one block to
    /// write at <see cref="Pml4Address"/>: PML4, PDPT, then one PD per GiB from <see cref="PdAddress"/> on.
    /// </summary>
    /// <param name="gibibytes">GiB to map, 1 to 512.</param>
    public static byte[] PageTables(int gibibytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gibibytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(gibibytes, 512);
        var tables = new byte[(2 + gibibytes) * PageSize];
        BinaryPrimitives.WriteUInt64LittleEndian(tables, PdptAddress | 0x03);
        for (var g = 0; g < gibibytes; g++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(tables.AsSpan(PageSize + (g * 8)), (PdAddress + (ulong)(g * PageSize)) | 0x03);
            for (var i = 0; i < 512; i++)
            {
                var page = ((ulong)g << 30) | ((ulong)i << 21);
                BinaryPrimitives.WriteUInt64LittleEndian(tables.AsSpan(((2 + g) * PageSize) + (i * 8)), page | LargePageFlags);
            }
        }

        return tables;
    }

    /// <summary>The long-mode register state for <paramref name="entry"/>, without touching memory.</summary>
    /// <param name="entry">RIP.</param>
    /// <param name="stackTop">RSP and RBP.</param>
    /// <param name="bootParams">RSI (Firecracker passes the zero page there; 0 for none).</param>
    public static InitialCpuState Registers(ulong entry, ulong stackTop, ulong bootParams = 0) =>
        Registers(entry, stackTop, bootParams, Gdt(), CodeSelector, DataSelector, TssSelector);

    /// <summary>The long-mode register state for <paramref name="entry"/> with the segments of <paramref name="gdt"/>, without touching memory.</summary>
    /// <param name="entry">RIP.</param>
    /// <param name="stackTop">RSP and RBP.</param>
    /// <param name="bootParams">RSI.</param>
    /// <param name="gdt">The GDT, written at <see cref="GdtAddress"/>.</param>
    /// <param name="codeSelector">CS: a 64-bit code descriptor of <paramref name="gdt"/>.</param>
    /// <param name="dataSelector">DS, ES, FS, GS and SS: a data descriptor of <paramref name="gdt"/>.</param>
    /// <param name="tssSelector">TR: a TSS descriptor of <paramref name="gdt"/>.</param>
    public static InitialCpuState Registers(ulong entry, ulong stackTop, ulong bootParams, ReadOnlySpan<ulong> gdt, ushort codeSelector, ushort dataSelector, ushort tssSelector)
    {
        var data = SegmentCache.FromDescriptor(dataSelector, gdt[dataSelector >> 3]);
        return new InitialCpuState
        {
            Rip = entry,
            Rsp = stackTop,
            Rbp = stackTop,
            Rsi = bootParams,
            Rflags = InitialCpuState.RflagsReserved,
            Cr0 = InitialCpuState.Cr0Pe | InitialCpuState.Cr0Et | InitialCpuState.Cr0Ne | InitialCpuState.Cr0Wp | InitialCpuState.Cr0Pg,
            Cr3 = Pml4Address,
            Cr4 = InitialCpuState.Cr4Pae,
            Efer = InitialCpuState.EferLme | InitialCpuState.EferLma,
            Cs = SegmentCache.FromDescriptor(codeSelector, gdt[codeSelector >> 3]),
            Ds = data,
            Es = data,
            Fs = data,
            Gs = data,
            Ss = data,
            Tr = SegmentCache.FromDescriptor(tssSelector, gdt[tssSelector >> 3]),
            GdtBase = GdtAddress,
            GdtLimit = (ushort)((gdt.Length * 8) - 1),
            IdtBase = IdtAddress,
            IdtLimit = 7,
        };
    }

    /// <summary>Writes the GDT, IDT and page tables and returns the state that enters a 64-bit ELF image.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image; it must be ELF64 and clear of the boot data.</param>
    /// <param name="stackTop">Initial RSP; must lie in RAM and in the identity-mapped 1 GiB.</param>
    /// <param name="bootParams">RSI for the guest (0 for none).</param>
    /// <exception cref="BootImageException">The image is not ELF64, its entry or the stack is not identity-mapped, or the boot data does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, LoadedImage image, ulong stackTop, ulong bootParams = 0)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!image.Is64Bit)
        {
            throw new BootImageException(
                BootImageRule.WrongProtocol,
                $"ELF32 image with entry 0x{image.ElfEntry:x} cannot be entered in 64-bit mode: direct long-mode boot needs an ELF64 image");
        }

        return Setup(memory, image.ElfEntry, stackTop, bootParams, image);
    }

    /// <summary>Writes the GDT, IDT and page tables and returns the state that enters <paramref name="entry"/> in long mode.</summary>
    /// <param name="memory">Guest RAM; at least 48 KiB.</param>
    /// <param name="entry">RIP; must lie in the identity-mapped 1 GiB.</param>
    /// <param name="stackTop">Initial RSP; must lie in RAM and in the identity-mapped 1 GiB.</param>
    /// <param name="bootParams">RSI for the guest (0 for none).</param>
    /// <param name="image">The loaded image to keep clear of, or null.</param>
    /// <exception cref="BootImageException">The entry or the stack is not identity-mapped, or the boot data does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, ulong entry, ulong stackTop, ulong bootParams = 0, LoadedImage? image = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (entry >= IdentityMappedSize)
        {
            throw new BootImageException(
                BootImageRule.NotIdentityMapped,
                $"entry 0x{entry:x} lies above the identity-mapped first 1 GiB (0x{IdentityMappedSize:x}): a direct 64-bit entry must be identity-mapped");
        }

        if (stackTop > Math.Min(IdentityMappedSize, memory.Size) || stackTop < PageSize)
        {
            throw new BootImageException(
                BootImageRule.NotIdentityMapped,
                $"stack top 0x{stackTop:x} must lie in [0x{PageSize:x}, 0x{Math.Min(IdentityMappedSize, memory.Size):x}]: the stack must be in RAM and identity-mapped");
        }

        BootMemory.Place(memory, image, GdtAddress, BootMemory.ToBytes(Gdt()), "GDT");
        BootMemory.Place(memory, image, IdtAddress, new byte[8], "IDT");
        BootMemory.Place(memory, image, Pml4Address, PageTables(), "identity page tables");
        return Registers(entry, stackTop, bootParams);
    }
}

using Hypervisor.Vmm.Tests.Boot;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// Tiny guest images built in the test: 64-bit code assembled with Iced into one ELF64 PT_LOAD at 1 MiB (entered
/// directly in long mode with the VMM's empty IDT), and images that break one boot rule each.
/// </summary>
internal static class TestImages
{
    /// <summary>Where the code is loaded and entered.</summary>
    public const ulong CodeAddress = 0x10_0000;

    /// <summary>The value <see cref="TripleFault"/> leaves in RAX, to find in a register dump.</summary>
    public const ulong RaxMarker = 0x1122_3344_5566_7788;

    /// <summary>An ELF64 image whose entry runs the 64-bit code <paramref name="emit"/> writes.</summary>
    /// <param name="emit">Emits the instructions.</param>
    public static byte[] Code64(Action<Assembler> emit)
    {
        var assembler = new Assembler(64);
        emit(assembler);
        using var code = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(code), CodeAddress);
        return ElfBuilder.Elf64(CodeAddress, ElfSegmentSpec.Load(CodeAddress, code.ToArray())).Build();
    }

    /// <summary>Where <see cref="LinuxBzImage"/>'s kernel is loaded (its pref_address); the 64-bit entry is 0x200 further.</summary>
    public const ulong BzImageLoadAddress = 0x20_0000;

    /// <summary>A bzImage whose 64-bit entry (load address + 0x200) runs the code <paramref name="emit"/> writes.</summary>
    /// <param name="emit">Emits the instructions.</param>
    public static byte[] LinuxBzImage(Action<Assembler> emit)
    {
        var assembler = new Assembler(64);
        emit(assembler);
        using var code = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(code), BzImageLoadAddress + 0x200);
        var kernel = new byte[0x200 + ((code.Length + 15) & ~15)];
        code.ToArray().CopyTo(kernel, 0x200);
        return new BzImageBuilder { PrefAddress = BzImageLoadAddress, KernelAlignment = 0x20_0000, InitSize = 0x10_0000, Kernel = kernel }.Build();
    }

    /// <summary>An ELF image with a PVH note whose entry runs the 32-bit code <paramref name="emit"/> writes (flat protected mode, paging off).</summary>
    /// <param name="emit">Emits the instructions.</param>
    public static byte[] Pvh32(Action<Assembler> emit)
    {
        var assembler = new Assembler(32);
        emit(assembler);
        using var code = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(code), CodeAddress);
        return ElfBuilder.Elf64(CodeAddress, ElfSegmentSpec.Load(CodeAddress, code.ToArray()), ElfSegmentSpec.Note(ElfBuilder.PvhNote((uint)CodeAddress))).Build();
    }

    /// <summary>Where <see cref="EnableLegacyPaging"/> builds its paging structures (the PAE PDPT, or the 32-bit page directory).</summary>
    public const uint LegacyPagingTables = 0x30_0000;

    /// <summary>
    /// Enters through PVH, identity-maps the low memory with one large page (a 4 MiB PSE page under 32-bit paging, a
    /// 2 MiB page under PAE), turns paging on, reads back a byte through the new mapping and reports it on the
    /// debug-exit port: the guest exit code is <paramref name="marker"/> only if the walk reached the right frame.
    /// </summary>
    /// <param name="pae">PAE paging (a PDPT and a page directory) rather than 32-bit paging.</param>
    /// <param name="marker">The byte stored before paging and read back after it.</param>
    public static byte[] EnableLegacyPaging(bool pae, byte marker) => Pvh32(a =>
    {
        const uint probe = 0x20_0800;
        a.mov(__byte_ptr[probe], marker);
        if (pae)
        {
            a.mov(__dword_ptr[LegacyPagingTables], unchecked((int)(LegacyPagingTables + 0x1000 | 1))); // PDPTE 0: present
            a.mov(__dword_ptr[LegacyPagingTables + 4], 0);
            a.mov(__dword_ptr[LegacyPagingTables + 0x1000], 0x83); // PDE 0: 2 MiB page at 0, PS|RW|P
            a.mov(__dword_ptr[LegacyPagingTables + 0x1000 + 4], 0);
            a.mov(__dword_ptr[LegacyPagingTables + 0x1008], 0x20_0083); // PDE 1: 2 MiB page at 2 MiB
            a.mov(__dword_ptr[LegacyPagingTables + 0x1008 + 4], 0);
        }
        else
        {
            a.mov(__dword_ptr[LegacyPagingTables], 0x83); // PDE 0: 4 MiB page at 0, PS|RW|P
        }

        a.mov(eax, cr4);
        a.or(eax, pae ? 0x20 : 0x10); // CR4.PAE, or CR4.PSE for 4 MiB pages
        a.mov(cr4, eax);
        a.mov(eax, LegacyPagingTables);
        a.mov(cr3, eax);
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000));
        a.mov(cr0, eax);
        a.mov(al, __byte_ptr[probe]);
        a.@out(0xF4, al);
        a.hlt();
    });

    /// <summary>
    /// Enters through PVH and asks for 5-level long-mode paging (CR4.LA57 with EFER.LME and CR0.PG), which the walker
    /// does not model, with <see cref="RaxMarker"/>'s low half in EBX. The page-table root need not be valid: the VM
    /// must stop before any walk.
    /// </summary>
    public static byte[] EnableFiveLevelPaging() => Pvh32(a =>
    {
        a.mov(ebx, unchecked((int)(uint)RaxMarker));
        a.mov(eax, cr4);
        a.or(eax, 0x20 | 0x1000); // CR4.PAE | CR4.LA57
        a.mov(cr4, eax);
        a.mov(ecx, unchecked((int)0xC000_0080));
        a.rdmsr();
        a.or(eax, 0x100); // EFER.LME
        a.wrmsr();
        a.mov(eax, LegacyPagingTables);
        a.mov(cr3, eax);
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0000));
        a.mov(cr0, eax);
        a.hlt();
    });

    /// <summary>Loads <see cref="RaxMarker"/> into RAX and executes UD2 with no IDT entries: #UD, #GP, #DF, triple fault.</summary>
    public static byte[] TripleFault() => Code64(a =>
    {
        a.mov(rax, RaxMarker);
        a.ud2();
    });

    /// <summary>Writes <paramref name="value"/> to the debug-exit port 0xF4.</summary>
    /// <param name="value">The guest's exit code.</param>
    public static byte[] DebugExit(byte value) => Code64(a =>
    {
        a.mov(al, value);
        a.@out(0xF4, al);
        a.hlt();
    });

    /// <summary>Powers off through ACPI PM1a control (SLP_EN with S5).</summary>
    public static byte[] PowerOff() => Code64(a =>
    {
        a.mov(dx, 0x604);
        a.mov(ax, 0x2000);
        a.@out(dx, ax);
        a.hlt();
    });

    /// <summary>Resets the machine through the i8042 (command 0xFE to port 0x64), as Linux's reboot=k does.</summary>
    public static byte[] KeyboardReset() => Code64(a =>
    {
        a.mov(al, 0xFE);
        a.@out(0x64, al);
        a.hlt();
    });

    /// <summary>
    /// Times PIT counter 2 in mode 0 (gate on through port 0x61) counting 11 932 input-clock ticks (10 ms) with the TSC,
    /// polling OUT2 in port 0x61 bit 5, and exits through port 0xF4 with the elapsed TSC ticks divided by 10⁶.
    /// </summary>
    public static byte[] PitChannel2Timing() => Code64(a =>
    {
        var poll = a.CreateLabel();
        a.@in(al, 0x61);
        a.and(al, 0xFC);
        a.or(al, 0x01);
        a.@out(0x61, al);
        a.mov(al, 0xB0);
        a.@out(0x43, al);
        a.mov(al, 0x9C);
        a.@out(0x42, al);
        a.mov(al, 0x2E);
        a.@out(0x42, al);
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.mov(rbx, rax);
        a.Label(ref poll);
        a.@in(al, 0x61);
        a.test(al, 0x20);
        a.jz(poll);
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.sub(rax, rbx);
        a.xor(edx, edx);
        a.mov(ecx, 1_000_000);
        a.div(rcx);
        a.@out(0xF4, al);
        a.hlt();
    });

    /// <summary>Halts with interrupts off.</summary>
    public static byte[] Halt() => Code64(a =>
    {
        a.cli();
        a.hlt();
    });

    /// <summary>Spins forever.</summary>
    public static byte[] Spin() => Code64(a =>
    {
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.jmp(loop);
    });

    /// <summary>The first 40 bytes of a valid image: an ELF identification with no complete header.</summary>
    public static byte[] Truncated() => [.. Halt().Take(40)];

    /// <summary>A PE-like file: "MZ" where 0x7F 'E' 'L' 'F' should be.</summary>
    public static byte[] BadMagic()
    {
        var file = Halt();
        file[0] = (byte)'M';
        file[1] = (byte)'Z';
        return file;
    }

    /// <summary>A segment at 256 MiB, beyond the default 128 MiB of guest RAM.</summary>
    public static byte[] SegmentOutsideRam() =>
        ElfBuilder.Elf64(0x1000_0000, ElfSegmentSpec.Load(0x1000_0000, [0xF4])).Build();

    /// <summary>Two PT_LOAD segments sharing the bytes from 1 MiB + 0x800.</summary>
    public static byte[] OverlappingSegments() =>
        ElfBuilder.Elf64(CodeAddress, ElfSegmentSpec.Load(CodeAddress, new byte[0x1000]), ElfSegmentSpec.Load(CodeAddress + 0x800, new byte[0x1000])).Build();

    /// <summary>An entry point 1 MiB past the only segment.</summary>
    public static byte[] EntryOutsideSegments() =>
        ElfBuilder.Elf64(0x20_0000, ElfSegmentSpec.Load(CodeAddress, [0xF4])).Build();
}

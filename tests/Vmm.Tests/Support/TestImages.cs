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

    /// <summary>
    /// Enters through PVH and turns on 32-bit paging: legacy 2-level (<paramref name="pae"/> false) or PAE, neither of
    /// which the walker models, with <see cref="RaxMarker"/>'s low half in EBX.
    /// </summary>
    /// <param name="pae">Sets CR4.PAE first.</param>
    public static byte[] EnableLegacyPaging(bool pae) => Pvh32(a =>
    {
        a.mov(ebx, unchecked((int)(uint)RaxMarker));
        if (pae)
        {
            a.mov(eax, cr4);
            a.or(eax, 0x20);
            a.mov(cr4, eax);
        }

        a.mov(eax, 0x9000);
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

using Hypervisor.GuestMmu.Backing;
using System.Buffers.Binary;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Notifier;
using Iced.Intel;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// One vCPU on the interpreter over a 64 MiB simulated host with 4 MiB of guest RAM in memslot 0, the TDP MMU,
/// the PC devices and a code-page map, started either in flat 32-bit protected mode (paging off) or in 64-bit
/// long mode (LongModeBoot's GDT and identity 2 MiB page tables). Snippets assembled with Iced's
/// <see cref="Assembler"/> are written at <see cref="CodeAddress"/> and run until HLT.
/// </summary>
/// <remarks>Guest layout: GDT at 0x500, IDT (256 gates, all not present) at <see cref="IdtAddress"/>, page
/// tables at 0x9000–0xBFFF, stack below <see cref="StackTop"/>, code at <see cref="CodeAddress"/>, scratch data
/// at <see cref="DataAddress"/>.</remarks>
public sealed class CpuTestMachine : IDisposable
{
    /// <summary>Guest RAM size.</summary>
    public const ulong RamBytes = 4UL << 20;

    /// <summary>Where the IDT lives (256 gates of the mode's size; every gate starts not present).</summary>
    public const ulong IdtAddress = 0x1000;

    /// <summary>The initial stack pointer.</summary>
    public const ulong StackTop = 0x8_0000;

    /// <summary>Where <see cref="Load"/> places code by default.</summary>
    public const ulong CodeAddress = 0x10_0000;

    /// <summary>Scratch memory for the tests' data.</summary>
    public const ulong DataAddress = 0x20_0000;

    /// <summary>The code selector of the mode the machine starts in.</summary>
    public const ushort CodeSelector = 0x08;

    /// <summary>The flat data selector.</summary>
    public const ushort DataSelector = 0x10;

    /// <summary>A 64-bit code selector (in the 32-bit machine's GDT, for the long-mode switch).</summary>
    public const ushort LongCodeSelector = 0x20;

    /// <summary>The environment variable that forces the instruction tests' tier (see <see cref="ApplyTestTier"/>).</summary>
    public const string TierVariable = "HV_TEST_TIER";

    private const ulong GdtAddress = 0x500;

    private readonly Host _host;
    private readonly HostProcess _process;
    private readonly TdpMmu _mmu;
    private readonly MmuContext _context;
    private readonly List<MmuContext> _extraContexts = [];
    private readonly Hva _ramBase;
    private readonly InitialCpuState _initialState;
    private AssemblerResult? _lastAssembly;
    private ulong _codeStart = CodeAddress;

    /// <summary>Builds the machine and loads the initial state of <paramref name="bitness"/> (32 or 64).</summary>
    /// <param name="bitness">32 or 64.</param>
    /// <param name="cr4Extra">CR4 bits set on top of the mode's own (CR4.OSFXSR for SSE tests).</param>
    /// <param name="platformDevices">True to give the vCPU the PC devices' local APIC 0 (on their I/O APIC) and platform timers (PIT, RTC), as the VM's boot vCPU has them.</param>
    public CpuTestMachine(int bitness, ulong cr4Extra = 0, bool platformDevices = false)
    {
        if (bitness is not (32 or 64))
        {
            throw new ArgumentOutOfRangeException(nameof(bitness), bitness, "the interpreter tests run in 32-bit protected mode or 64-bit long mode");
        }

        Bitness = bitness;
        _host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 64UL << 20 } });
        _process = _host.CreateMm();
        var ramBase = _process.Mmap(RamBytes, Protection.Read | Protection.Write);
        _ramBase = ramBase;
        Ram = new GuestRam(_process, ramBase, RamBytes);
        _mmu = new TdpMmu(new TlbShootdown());
        _mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), RamBytes, ramBase, new HostProcessBacking(_process));
        _context = new MmuContext(_mmu, 0);
        Bus = new DeviceBus();
        Stop = new VmStopSignal();
        Console = new GuestConsole();
        Devices = PcDevices.Attach(Bus, Console, Stop, 1, RamBytes);
        CodeMap = new CodePageMap(RamBytes);
        Cpu = new X86Cpu(_context, Bus, CodeMap, Stop, 0, platformDevices ? Devices.LocalApic : null);
        ApplyTestTier(Cpu);
        if (platformDevices)
        {
            Cpu.PlatformTimers = Devices.Timers;
        }

        Ram.Write(LongModeBoot.Pml4Address, LongModeBoot.PageTables());
        Ram.Write(IdtAddress, new byte[256 * GateSize]);
        ulong[] gdt;
        if (bitness == 64)
        {
            gdt = LongModeBoot.Gdt();
            _initialState = LongModeBoot.Registers(CodeAddress, StackTop);
        }
        else
        {
            gdt =
            [
                0, GdtEntry.Create(0xC09B, 0, 0xFFFFF), GdtEntry.Create(0xC093, 0, 0xFFFFF), GdtEntry.Create(0x008B, 0, 0x67),
                GdtEntry.Create(0xA09B, 0, 0xFFFFF),
            ];
            _initialState = BootMemory.Flat32(CodeAddress, GdtAddress, gdt) with { Rsp = StackTop };
        }

        Ram.Write(GdtAddress, BootMemory.ToBytes(gdt));
        _initialState = _initialState with
        {
            GdtBase = GdtAddress,
            GdtLimit = (ushort)((gdt.Length * 8) - 1),
            IdtBase = IdtAddress,
            IdtLimit = (ushort)((256 * GateSize) - 1),
            Cr4 = _initialState.Cr4 | cr4Extra,
        };
        Reset();
    }

    /// <summary>The mode the machine starts in: 32 or 64.</summary>
    public int Bitness { get; }

    /// <summary>The simulated host.</summary>
    public Host Host => _host;

    /// <summary>The host process whose anonymous memory is guest RAM.</summary>
    public HostProcess Process => _process;

    /// <summary>The host address of guest-physical 0 (guest RAM is one mapping of <see cref="RamBytes"/>).</summary>
    public Hva RamBase => _ramBase;

    /// <summary>The secondary MMU.</summary>
    public TdpMmu Mmu => _mmu;

    /// <summary>
    /// Adds vCPU <paramref name="id"/>: its own MMU context (soft TLB, shootdown port) and interpreter over the same
    /// memory, devices and code-page map, loaded with the starting mode's state at <see cref="CodeAddress"/>.
    /// </summary>
    /// <param name="id">The vCPU id (1 and up; 0 is <see cref="Cpu"/>).</param>
    public X86Cpu AddVcpu(int id)
    {
        var context = new MmuContext(_mmu, id);
        _extraContexts.Add(context);
        var cpu = new X86Cpu(context, Bus, CodeMap, Stop, id);
        ApplyTestTier(cpu);
        cpu.Load(_initialState);
        return cpu;
    }

    /// <summary>
    /// The tier the instruction tests run under, from the environment variable <see cref="TierVariable"/>:
    /// <c>interp</c> runs every block on the interpreter, <c>jit</c> compiles every block on its first run (so each
    /// instruction form runs in compiled code); unset, a vCPU keeps its default (the JIT after 50 runs of a block).
    /// </summary>
    public static void ApplyTestTier(X86Cpu cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        switch (Environment.GetEnvironmentVariable(TierVariable))
        {
            case null or "":
                return;
            case "interp":
                cpu.Tier = ExecutionTier.Interp;
                return;
            case "jit":
                cpu.Tier = ExecutionTier.Jit;
                cpu.JitThreshold = 1;
                return;
            case var other:
                throw new InvalidOperationException($"{TierVariable}={other}: expected interp or jit");
        }
    }

    /// <summary>The size of an IDT gate in the starting mode (8 or 16 bytes).</summary>
    public int GateSize => Bitness == 64 ? 16 : 8;

    /// <summary>The interpreter.</summary>
    public X86Cpu Cpu { get; }

    /// <summary>The PC devices on <see cref="Bus"/>.</summary>
    public PcDevices Devices { get; }

    /// <summary>Guest RAM, read and written through the host process.</summary>
    public GuestRam Ram { get; }

    /// <summary>The port and MMIO bus (PC devices attached; tests may add their own).</summary>
    public DeviceBus Bus { get; }

    /// <summary>The VM stop signal.</summary>
    public VmStopSignal Stop { get; }

    /// <summary>The guest console behind the PC devices.</summary>
    public GuestConsole Console { get; }

    /// <summary>The map of pages holding decoded code.</summary>
    public CodePageMap CodeMap { get; }

    /// <summary>A general register (any size, with x86's write rules).</summary>
    public ulong this[Register register]
    {
        get => Cpu.GetRegister(register);
        set => Cpu.SetRegister(register, value);
    }

    /// <summary>RFLAGS.</summary>
    public ulong Rflags
    {
        get => Cpu.GetRflags();
        set => Cpu.SetRflags(value);
    }

    /// <summary>Builds the machine, assembles <paramref name="emit"/>'s code at <see cref="CodeAddress"/> and points RIP at it.</summary>
    public static CpuTestMachine With(int bitness, Action<Assembler> emit, bool platformDevices = false)
    {
        ArgumentNullException.ThrowIfNull(emit);
        var machine = new CpuTestMachine(bitness, platformDevices: platformDevices);
        var assembler = new Assembler(bitness);
        emit(assembler);
        machine.Load(assembler);
        return machine;
    }

    /// <summary>Builds a machine, loads <paramref name="emit"/>'s code, applies <paramref name="setup"/> (registers, memory, gates) and runs to HLT.</summary>
    public static CpuTestMachine Execute(int bitness, Action<Assembler> emit, Action<CpuTestMachine>? setup = null)
    {
        var machine = With(bitness, emit);
        try
        {
            setup?.Invoke(machine);
            machine.RunToHalt();
            return machine;
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>Reloads the starting mode's state: every general register zero except RSP, RFLAGS = 2, RIP = <see cref="CodeAddress"/>.</summary>
    public void Reset() => Cpu.Load(_initialState);

    /// <summary>Assembles <paramref name="assembler"/> at <paramref name="address"/>, writes it to guest RAM, drops stale decoded code and sets RIP there.</summary>
    /// <returns>The encoded bytes.</returns>
    public byte[] Load(Assembler assembler, ulong address = CodeAddress)
    {
        ArgumentNullException.ThrowIfNull(assembler);
        var writer = new CodeBytes();
        _lastAssembly = assembler.Assemble(writer, address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        var bytes = writer.ToArray();
        WriteCode(address, bytes);
        _codeStart = address;
        Cpu.Rip = address;
        return bytes;
    }

    /// <summary>Encodes <paramref name="assembler"/>'s code for <paramref name="address"/> without loading it (for code of another mode).</summary>
    public static byte[] Encode(Assembler assembler, ulong address)
    {
        ArgumentNullException.ThrowIfNull(assembler);
        var writer = new CodeBytes();
        assembler.Assemble(writer, address);
        return writer.ToArray();
    }

    /// <summary>The address of <paramref name="label"/> in the code last passed to <see cref="Load"/>.</summary>
    public ulong AddressOf(Label label)
    {
        var assembly = _lastAssembly ?? throw new InvalidOperationException("no code has been loaded");
        return assembly.GetLabelRIP(label);
    }

    /// <summary>Writes <paramref name="bytes"/> at <paramref name="gpa"/> as a loader would (DMA), and invalidates decoded code on those pages.</summary>
    public void WriteCode(ulong gpa, ReadOnlySpan<byte> bytes)
    {
        Ram.Write(gpa, bytes);
        for (var page = gpa & ~0xFFFUL; page < gpa + (ulong)bytes.Length; page += 0x1000)
        {
            CodeMap.OnWatchedWrite(new Gpa(page));
        }
    }

    /// <summary>Runs at most <paramref name="instructionBudget"/> instructions.</summary>
    public CpuExit Run(long instructionBudget = 1_000_000) => Cpu.Run(instructionBudget);

    /// <summary>Runs and asserts the vCPU stopped at a HLT (the message carries the exit's report).</summary>
    public void RunToHalt(long instructionBudget = 1_000_000)
    {
        var exit = Cpu.Run(instructionBudget);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), () => $"{exit.Detail}{Environment.NewLine}{Cpu.DescribeState()}");
    }

    /// <summary>Runs the code last loaded from its start with the given registers and RFLAGS, to HLT.</summary>
    public void RunFromStart(ulong rflags, params (Register Register, ulong Value)[] registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        Reset();
        Cpu.Rip = _codeStart;
        foreach (var (register, value) in registers)
        {
            Cpu.SetRegister(register, value);
        }

        Cpu.SetRflags(rflags);
        RunToHalt();
    }

    /// <summary>Installs a present, DPL-0 interrupt gate for <paramref name="vector"/> to <paramref name="handler"/> (trap gate when <paramref name="trap"/>).</summary>
    public void SetGate(int vector, ulong handler, bool trap = false, int dpl = 0)
    {
        var type = (ulong)(trap ? 0xF : 0xE);
        var low = (handler & 0xFFFF) | ((ulong)CodeSelector << 16) | ((0x80UL | ((ulong)dpl << 5) | type) << 40) | ((handler >> 16 & 0xFFFF) << 48);
        WriteUInt64(IdtAddress + (ulong)(vector * GateSize), low);
        if (GateSize == 16)
        {
            WriteUInt64(IdtAddress + (ulong)(vector * GateSize) + 8, handler >> 32);
        }
    }

    /// <summary>Reads a byte of guest RAM.</summary>
    public byte ReadByte(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[1];
        Ram.Read(gpa, bytes);
        return bytes[0];
    }

    /// <summary>Reads a little-endian 16-bit word of guest RAM.</summary>
    public ushort ReadUInt16(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[2];
        Ram.Read(gpa, bytes);
        return BinaryPrimitives.ReadUInt16LittleEndian(bytes);
    }

    /// <summary>Reads a little-endian 32-bit word of guest RAM.</summary>
    public uint ReadUInt32(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[4];
        Ram.Read(gpa, bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    /// <summary>Reads a little-endian 64-bit word of guest RAM.</summary>
    public ulong ReadUInt64(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[8];
        Ram.Read(gpa, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>Reads <paramref name="length"/> bytes of guest RAM.</summary>
    public byte[] ReadBytes(ulong gpa, int length)
    {
        var bytes = new byte[length];
        Ram.Read(gpa, bytes);
        return bytes;
    }

    /// <summary>Writes a little-endian 64-bit word to guest RAM.</summary>
    public void WriteUInt64(ulong gpa, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Ram.Write(gpa, bytes);
    }

    /// <summary>Writes a little-endian 32-bit word to guest RAM.</summary>
    public void WriteUInt32(ulong gpa, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        Ram.Write(gpa, bytes);
    }

    /// <summary>Writes bytes to guest RAM (data, not code: no decode-cache invalidation).</summary>
    public void WriteBytes(ulong gpa, ReadOnlySpan<byte> bytes) => Ram.Write(gpa, bytes);

    /// <summary>The stack slot <paramref name="index"/> above RSP (slots of the starting mode's width).</summary>
    public ulong StackSlot(int index)
    {
        var rsp = Cpu.GetRegister(Register.RSP);
        return Bitness == 64 ? ReadUInt64(rsp + (ulong)(index * 8)) : ReadUInt32((uint)rsp + (ulong)(index * 4));
    }

    /// <summary>Tears down the MMU context, the MMU, the host process and the host.</summary>
    public void Dispose()
    {
        foreach (var context in _extraContexts)
        {
            context.Dispose();
        }

        _context.Dispose();
        _mmu.Dispose();
        if (!_process.HasExited)
        {
            _process.Exit();
        }

        _host.Dispose();
    }

    /// <summary>An Iced code writer into a growable buffer.</summary>
    private sealed class CodeBytes : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu.Jit;
using Hypervisor.Vmm.Devices;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// One vCPU's x86 interpreter (32-bit protected mode and 64-bit long mode) over Iced's decoder. Every memory
/// access goes through the vCPU's <see cref="MmuContext"/> — its soft TLB, the two-dimensional walker and the
/// EPT fault path — and port I/O and MMIO through the VM's <see cref="DeviceBus"/>.
/// </summary>
/// <remarks>
/// <para>Execution is by basic blocks decoded once and cached per (guest-physical page, code size); a block
/// ends at a branch, a mode change, I/O or its page end. Stores to a page holding cached code are caught by
/// the <see cref="CodePageMap"/> (the TLB never caches a write hit for such a page) and drop its blocks.</para>
/// <para>TLB coherence: the vCPU is in guest mode for the whole of <see cref="Run"/> and services shootdown
/// requests at every block boundary, so a host invalidation waits at most one block.</para>
/// <para>Owned by one thread: no member may be called concurrently.</para>
/// </remarks>
[SkipLocalsInit]
public sealed unsafe partial class X86Cpu // unsafe: guest memory is read and written through TLB host pointers.
{
    private const int MaxBlockInstructions = 64;
    /// <summary>Element iterations of a repeated string instruction per execution.</summary>
    internal const int RepChunk = 1024;

    /// <summary>Device accesses (port I/O, MMIO exits) of a repeated string instruction per execution.</summary>
    internal const int RepDeviceChunk = 64;

    /// <summary>Bulk pages of a REP MOVS/STOS per execution.</summary>
    internal const int RepBulkChunkPages = 64;

    private readonly MmuContext _mmu;
    private readonly SoftTlb _tlb;
    private readonly DeviceBus _bus;
    private readonly CodePageMap _codeMap;
    private readonly VmStopSignal _stop;
    private readonly SegmentState[] _segments = new SegmentState[8];
    private readonly Dictionary<ulong, CodePage> _codePages = [];
    private readonly PointerCodeReader _codeReader = new();
    private readonly Decoder[] _decoders = new Decoder[3];

    private GprFile _gpr;
    private ulong _rip;
    private ulong _currentIp;
    private int _bitness = 32;
    private int _codeSizeTag = 2;
    private bool _blockBroken;
    private CpuExit? _pendingExit;
    private CodePage? _lastPage;
    private CodeBlock? _runningBlock;

    private long _instructions;
    private long _blocks;
    private long _decodeHits;
    private long _decodeMisses;
    private long _decoded;
    private long _exceptions;
    private long _pageFaults;
    private long _portIo;
    private long _mmio;
    private long _localCodeInvalidations;

    /// <summary>Creates vCPU <paramref name="vcpuId"/>'s interpreter over its memory view and the VM's devices.</summary>
    /// <param name="mmu">The vCPU's memory view; its <see cref="MmuContext.WriteMonitor"/> is taken over.</param>
    /// <param name="bus">The VM's port and MMIO devices.</param>
    /// <param name="codeMap">The VM's map of pages holding decoded code.</param>
    /// <param name="stop">The VM's stop signal (checked at block boundaries).</param>
    /// <param name="vcpuId">The vCPU's id (its initial APIC id).</param>
    /// <param name="apic">The vCPU's local APIC (from the VM's <see cref="InterruptRouter"/>); null for one of its own, on no router.</param>
    public X86Cpu(MmuContext mmu, DeviceBus bus, CodePageMap codeMap, VmStopSignal stop, int vcpuId = 0, LocalApic? apic = null)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(codeMap);
        ArgumentNullException.ThrowIfNull(stop);
        _mmu = mmu;
        _tlb = mmu.Tlb;
        _bus = bus;
        _codeMap = codeMap;
        _stop = stop;
        VcpuId = vcpuId;
        _mmu.WriteMonitor = new StoreWatch(this);
        _apic = apic ?? new LocalApic(vcpuId, bootstrap: vcpuId == 0);
        _apicBase = _apic.BaseMsr;
        AttachApic();
        ResetFlags();
    }

    /// <summary>The vCPU's id.</summary>
    public int VcpuId { get; }

    /// <summary>The vCPU's memory view.</summary>
    public MmuContext Mmu => _mmu;

    /// <summary>RIP.</summary>
    public ulong Rip
    {
        get => _rip;
        set => _rip = value;
    }

    /// <summary>The code size in force: 16, 32 or 64 bits.</summary>
    public int Bitness => _bitness;

    /// <summary>Instructions retired so far.</summary>
    public long InstructionsRetired => _instructions;

    /// <summary>The access behind the last <see cref="CpuExitReason.MemoryFault"/> exit (null before any).</summary>
    public Hypervisor.GuestMmu.Walker.MemoryFault? LastMemoryFault => _mmu.Walker.LastMemoryFault;

    /// <summary>A snapshot of the counters.</summary>
    public CpuStats Stats => new()
    {
        Instructions = _instructions,
        Blocks = _blocks,
        DecodeCacheHits = _decodeHits,
        DecodeCacheMisses = _decodeMisses,
        InstructionsDecoded = _decoded,
        CodeInvalidations = _localCodeInvalidations,
        ExceptionsDelivered = _exceptions,
        PageFaults = _pageFaults,
        PortIo = _portIo,
        MmioAccesses = _mmio,
        InterruptsDelivered = _interruptsDelivered,
        HaltWakeups = _haltWakeups,
        HaltedTicks = _haltedTicks,
        Jit = JitStats,
    };

    /// <summary>
    /// Compiles the interpreter's hot paths (the methods marked for full optimisation) now, so that a VM's
    /// first guest instructions do not wait for the JIT; idempotent and thread-safe.
    /// </summary>
    public static void PrepareHotPaths() => HotPathsPrepared.Value.ToString();

    private static readonly Lazy<bool> HotPathsPrepared = new(() =>
    {
        foreach (var method in typeof(X86Cpu).GetMethods(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic))
        {
            if ((method.MethodImplementationFlags & System.Reflection.MethodImplAttributes.AggressiveOptimization) != 0)
            {
                RuntimeHelpers.PrepareMethod(method.MethodHandle);
            }
        }

        // Iced's decoder tables and the handler table are built on first use: build them now too.
        foreach (var bitness in new[] { 16, 32, 64 })
        {
            var decoder = Decoder.Create(bitness, new ByteArrayCodeReader([0x90]), 0, DecoderOptions.None);
            decoder.Decode(out var nop);
            OpClassifier.Classify(nop);
        }

        GC.KeepAlive(RegisterInfo);

        // The translator's own methods and Reflection.Emit are compiled on their first use as well: translate one
        // small loop now (its code returns at once: Compile has the .NET JIT compile it, as it does for every guest block).
        BlockCompiler.Compile(WarmUpBlock(), 64);
        return true;
    });

    // A self-loop of translated forms: MOV r, r; ADD r, imm; MOV r, [r + disp]; OR [r], r; IMUL r, r; CMP r, r; JNE.
    private static CodeBlock WarmUpBlock()
    {
        const ulong Start = 0x1000;
        var rax = RegisterInfo[(int)Register.RAX];
        var rcx = RegisterInfo[(int)Register.RCX];
        var rdx = RegisterInfo[(int)Register.RDX];
        static DecodedInstruction Form(Op op, ushort reg0, ushort reg1, OperandKind kind0, OperandKind kind1) => new()
        {
            Op = op,
            Reg0 = reg0,
            Reg1 = reg1,
            Kind0 = kind0,
            Kind1 = kind1,
            Size = 8,
            Mask = ulong.MaxValue,
            Immediate = 1,
            Displacement = 8,
            AddressSize = 8,
            MemorySize = kind0 == OperandKind.Memory || kind1 == OperandKind.Memory ? (byte)8 : (byte)0,
            Segment = (byte)SegmentRegister.Ds,
            Base = 6,
            Index = DecodedInstruction.NoRegister,
            ImmediateOperand = 0xFF,
        };

        DecodedInstruction[] instructions =
        [
            Form(Op.MovRR, rax, rcx, OperandKind.Register, OperandKind.Register),
            Form(Op.AddRI, rax, 0, OperandKind.Register, OperandKind.Immediate),
            Form(Op.MovRM, rdx, 0, OperandKind.Register, OperandKind.Memory),
            Form(Op.OrMR, 0, rdx, OperandKind.Memory, OperandKind.Register),
            Form(Op.Imul2, rax, rdx, OperandKind.Register, OperandKind.Register),
            Form(Op.CmpRR, rax, rdx, OperandKind.Register, OperandKind.Register),
            Form(Op.Jcc, 0, 0, OperandKind.Other, OperandKind.Other) with { Condition = ConditionCode.ne, Target = Start },
        ];
        for (var k = 0; k < instructions.Length; k++)
        {
            instructions[k].NextIp = Start + (ulong)(k + 1) * 4;
        }

        return new CodeBlock(Start, instructions, new Gfn(1), 0, linkable: true);
    }

    /// <summary>Loads the state a boot protocol hands over (registers, control registers, segment caches, descriptor tables).</summary>
    public void Load(in InitialCpuState state)
    {
        _gpr = default;
        _gpr[0] = state.Rax;
        _gpr[3] = state.Rbx;
        _gpr[4] = state.Rsp;
        _gpr[5] = state.Rbp;
        _gpr[6] = state.Rsi;
        _gpr[7] = state.Rdi;
        _rip = state.Rip;
        SetRflags(state.Rflags | 2);
        _cr0 = state.Cr0 | Cr0Et;
        _cr3 = state.Cr3;
        _cr4 = state.Cr4;
        _efer = state.Efer;
        _gdtBase = state.GdtBase;
        _gdtLimit = state.GdtLimit;
        _idtBase = state.IdtBase;
        _idtLimit = state.IdtLimit;
        _segments[(int)SegmentRegister.Cs] = FromCache(state.Cs);
        _segments[(int)SegmentRegister.Ds] = FromCache(state.Ds);
        _segments[(int)SegmentRegister.Es] = FromCache(state.Es);
        _segments[(int)SegmentRegister.Fs] = FromCache(state.Fs);
        _segments[(int)SegmentRegister.Gs] = FromCache(state.Gs);
        _segments[(int)SegmentRegister.Ss] = FromCache(state.Ss);
        _segments[(int)SegmentRegister.Tr] = FromCache(state.Tr);
        _segments[(int)SegmentRegister.Ldtr] = new SegmentState { Attributes = SegmentState.AttrP | 2 };
        UpdateMode();
        UpdatePaging(flushAll: true);
    }

    /// <summary>
    /// Runs until <paramref name="instructionBudget"/> more instructions have retired (exactly: the last block is
    /// cut short), a device asks the VM to stop, the vCPU halts, or the machine cannot continue.
    /// </summary>
    public CpuExit Run(long instructionBudget)
    {
        var port = _mmu.Port;
        var limit = _instructions + Math.Max(1, instructionBudget);
        port.EnterGuest();
        try
        {
            while (_instructions < limit)
            {
                var exit = RunBlocks(limit);
                if (exit is not null)
                {
                    return exit.Value;
                }
            }

            return new CpuExit(CpuExitReason.BudgetExhausted, string.Empty);
        }
        finally
        {
            port.ExitGuest();
        }
    }

    // A bounded slice of blocks: a method that returns often tiers up as a whole (no on-stack replacement
    // of a long-running loop), and the chain of linked blocks stays in locals.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private CpuExit? RunBlocks(long limit)
    {
        const int SliceBlocks = 4096;
        var port = _mmu.Port;
        CodeBlock? previous = null;
        for (var n = 0; n < SliceBlocks && _instructions < limit; n++)
        {
            port.ServiceRequests();
            if (_stop.IsStopRequested)
            {
                return new CpuExit(CpuExitReason.StopRequested, _stop.Request!.ToString());
            }

            try
            {
                if (_instructions >= _eventAt && ServiceEvents())
                {
                    previous = null;
                }

                var block = NextBlock(previous);
                previous = ExecuteBlock(block, limit - _instructions);
            }
            catch (GuestException exception)
            {
                RetireBeforeFault();
                previous = null;
                _rip = _currentIp;

                // Delivery reads the IDT, the GDT and the stack: it may fail the VM too, which is a report, as above.
                if (DeliverOrReport(exception) is { } failed)
                {
                    return failed;
                }
            }
            catch (VmFailureException failure)
            {
                RetireBeforeFault();
                _rip = _currentIp;
                return new CpuExit(failure.Reason, $"{failure.Message} at RIP 0x{_currentIp:x}");
            }

            if (_pendingExit is { } exit)
            {
                _pendingExit = null;
                return exit;
            }
        }

        return null;
    }

    /// <summary>Delivers a guest exception; null when delivered, else the exit for the VM failure that delivery met (e.g. an IDT behind MMIO).</summary>
    private CpuExit? DeliverOrReport(GuestException exception)
    {
        try
        {
            DeliverException(exception);
            return null;
        }
        catch (VmFailureException failure)
        {
            return new CpuExit(failure.Reason, $"{failure.Message} at RIP 0x{_currentIp:x}");
        }
    }

    /// <summary>The vCPU's registers, for a stop report (call between runs, on the owning thread).</summary>
    public RegisterSnapshot CaptureRegisters() => new()
    {
        Rax = _gpr[0],
        Rcx = _gpr[1],
        Rdx = _gpr[2],
        Rbx = _gpr[3],
        Rsp = _gpr[4],
        Rbp = _gpr[5],
        Rsi = _gpr[6],
        Rdi = _gpr[7],
        R8 = _gpr[8],
        R9 = _gpr[9],
        R10 = _gpr[10],
        R11 = _gpr[11],
        R12 = _gpr[12],
        R13 = _gpr[13],
        R14 = _gpr[14],
        R15 = _gpr[15],
        Rip = _rip,
        Rflags = GetRflags(),
        Cpl = Cpl,
        Bitness = _bitness,
        Cr0 = _cr0,
        Cr2 = _cr2,
        Cr3 = _cr3,
        Cr4 = _cr4,
        Efer = _efer,
        Cs = _segments[(int)SegmentRegister.Cs].Selector,
        Ss = _segments[(int)SegmentRegister.Ss].Selector,
        Ds = _segments[(int)SegmentRegister.Ds].Selector,
        GdtBase = _gdtBase,
        GdtLimit = _gdtLimit,
        IdtBase = _idtBase,
        IdtLimit = _idtLimit,
    };

    /// <summary>The register lines of <see cref="CaptureRegisters"/>, for test and log messages.</summary>
    public string DescribeState() => RegisterFormatter.Format(CaptureRegisters());

    private static SegmentState FromCache(in SegmentCache cache) => new()
    {
        Selector = cache.Selector,
        Base = cache.Base,
        Limit = cache.Limit,
        Attributes = (ushort)(cache.Type
            | (cache.CodeOrData ? SegmentState.AttrS : 0)
            | (cache.Dpl << 5)
            | (cache.Present ? SegmentState.AttrP : 0)
            | (cache.LongMode ? SegmentState.AttrL : 0)
            | (cache.DefaultBig ? SegmentState.AttrDb : 0)
            | (cache.Granularity ? SegmentState.AttrG : 0)),
    };

    // Inlined into RunBlocks (no exception handling here, so the JIT can): a fault unwinds past it and the
    // catch counts the instructions retired before the faulting one from _runningBlock. Returns the block that ran
    // last (compiled code may have chained into successors), the one the next block is linked from.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private CodeBlock ExecuteBlock(CodeBlock block, long budget)
    {
        _blocks++;
        _runningBlock = block;
        if (TryRunCompiled(block, budget))
        {
            var last = _runningBlock!;
            _runningBlock = null;
            return last;
        }

        var instructions = block.Instructions;
        var count = budget < instructions.Length ? (int)budget : instructions.Length;
        ref var first = ref MemoryMarshal.GetArrayDataReference(instructions);
        var executed = 0;
        while (executed < count)
        {
            ref var d = ref Unsafe.Add(ref first, executed);
            _rip = d.NextIp;
            Execute(ref d);
            executed++;
            if (_blockBroken)
            {
                _blockBroken = false;
                break;
            }
        }

        _runningBlock = null;
        _instructions += executed;
        return block;
    }

    /// <summary>
    /// After a fault in the running block: finds the faulting instruction (the one whose next RIP is in RIP: no
    /// handler moves RIP before its last access that can fault), makes it <c>_currentIp</c>, and counts the
    /// block's instructions that retired before it. The hot path does not store <c>_currentIp</c> per
    /// instruction; the general dispatch does, and a fault outside any block (a fetch) set it itself.
    /// </summary>
    private void RetireBeforeFault()
    {
        if (_jitRunStart != NoCompiledRun)
        {
            _jitInstructions += _instructions - _jitRunStart;
            _jitRunStart = NoCompiledRun;
        }

        var block = _runningBlock;
        _runningBlock = null;
        if (block is null)
        {
            return;
        }

        // A loop trace's second block follows the first in its LoopTrace: a fault in either part is found (the parts do
        // not overlap, so a fault in the first is found there even when the block ran alone on the interpreter).
        var retired = 0;
        foreach (ref var d in (block.LoopTrace ?? block.Instructions).AsSpan())
        {
            if (d.NextIp == _rip)
            {
                _currentIp = d.Instruction.IP;
                _instructions += retired;
                return;
            }

            retired++;
        }
    }

    /// <summary>The block at RIP: a still-valid link of <paramref name="previous"/>, else a cache lookup (which links it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private CodeBlock NextBlock(CodeBlock? previous)
    {
        if (previous is not null && previous.LinkEpoch == _tlb.FlushEpoch)
        {
            var candidate = previous.NextRip == _rip ? previous.Next : previous.OtherRip == _rip ? previous.Other : null;
            if (candidate is not null && candidate.Version == _codeMap.VersionOf(candidate.Gfn))
            {
                _decodeHits++;
                return candidate;
            }
        }

        var block = FindBlock();
        if (previous is { Linkable: true })
        {
            var epoch = _tlb.FlushEpoch;
            if (previous.LinkEpoch != epoch)
            {
                previous.LinkEpoch = epoch;
                previous.Next = previous.Other = null;
                previous.NextRip = previous.OtherRip = ulong.MaxValue;
            }

            if (previous.Next is null || previous.Next.Version != _codeMap.VersionOf(previous.Next.Gfn))
            {
                previous.Next = block;
                previous.NextRip = _rip;
            }
            else
            {
                previous.Other = block;
                previous.OtherRip = _rip;
            }
        }

        return block;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private CodeBlock FindBlock()
    {
        _currentIp = _rip;
        var linear = CodeLinear(_rip);
        if (!_mmu.TryTranslateFetch(new Gva(linear), out var host, out var gpa, out var failure))
        {
            RaiseTranslationFault(failure, linear, SegmentRegister.Cs);
        }

        var key = (gpa.Value & ~Paging.PageOffsetMask) | (uint)_codeSizeTag;
        var page = _lastPage;
        if (page is null || page.Key != key)
        {
            if (!_codePages.TryGetValue(key, out page))
            {
                page = new CodePage(key, _codeMap.VersionOf(gpa.Gfn));
                _codePages.Add(key, page);
            }

            _lastPage = page;
        }

        var version = _codeMap.VersionOf(gpa.Gfn);
        if (page.Version != version)
        {
            Array.Clear(page.Blocks);
            page.Version = version;
            _localCodeInvalidations++;
        }

        var offset = (int)(gpa.Value & Paging.PageOffsetMask);
        var block = page.Blocks[offset];
        if (block is not null && block.StartRip == _rip)
        {
            _decodeHits++;
            return block;
        }

        _decodeMisses++;
        if (_codeMap.Watch(gpa.Gfn))
        {
            // No vCPU may keep a writable translation of a page that now holds decoded code: its stores would go unseen.
            _mmu.FlushEveryVcpu();
        }

        block = Decode(host, offset, linear, gpa.Gfn, version, out var cacheable);
        if (cacheable)
        {
            page.Blocks[offset] = block;
        }

        return block;
    }

    private CodeBlock Decode(byte* host, int pageOffset, ulong linear, Gfn gfn, int version, out bool cacheable)
    {
        var decoder = DecoderFor(_bitness);
        _codeReader.Reset(host, (int)Paging.PageSize - pageOffset);
        decoder.IP = _rip;
        var list = new List<DecodedInstruction>(8);
        cacheable = true;
        while (true)
        {
            decoder.Decode(out var instruction);
            if (instruction.Code == Code.INVALID && decoder.LastError == DecoderError.NoMoreBytes)
            {
                if (list.Count > 0)
                {
                    break;
                }

                cacheable = false;
                list.Add(DecodeAcrossPages(linear));
                break;
            }

            var d = Describe(instruction);
            list.Add(d);
            _decoded++;
            if (OpClassifier.EndsBlock(d.Op) || list.Count >= MaxBlockInstructions || _codeReader.Remaining == 0)
            {
                break;
            }
        }

        var last = list[^1].Op;
        var linkable = cacheable && (!OpClassifier.EndsBlock(last) || last is Op.Jcc or Op.Jmp or Op.JmpIndirect or Op.Call
            or Op.CallIndirect or Op.Ret or Op.Loop or Op.Loope or Op.Loopne or Op.Jrcxz);
        return new CodeBlock(_rip, [.. list], gfn, version, linkable);
    }

    private DecodedInstruction DecodeAcrossPages(ulong linear)
    {
        Span<byte> bytes = stackalloc byte[15];
        var firstPart = (int)(Paging.PageSize - (linear & Paging.PageOffsetMask));
        var result = _mmu.Fetch(new Gva(linear), bytes[..firstPart]);
        if (result.IsOk)
        {
            result = _mmu.Fetch(new Gva(linear + (ulong)firstPart), bytes[firstPart..]);
        }

        if (!result.IsOk)
        {
            RaiseTranslationFault(result.Fault, linear + (ulong)firstPart, SegmentRegister.Cs);
        }

        var decoder = Decoder.Create(_bitness, new ByteArrayCodeReader(bytes.ToArray()), _rip, DecoderOptions.None);
        decoder.Decode(out var instruction);
        _decoded++;
        return Describe(instruction);
    }

    private Decoder DecoderFor(int bitness)
    {
        var index = bitness == 64 ? 2 : bitness == 32 ? 1 : 0;
        return _decoders[index] ??= Decoder.Create(bitness, _codeReader, 0, DecoderOptions.None);
    }

    private DecodedInstruction Describe(in Instruction instruction)
    {
        var op = instruction.Code == Code.INVALID ? Op.Ud : OpClassifier.Classify(instruction);
        byte size = 0;
        byte addressSize = (byte)(_bitness / 8);
        for (var n = 0; n < instruction.OpCount && size == 0; n++)
        {
            switch (instruction.GetOpKind(n))
            {
                case OpKind.Register:
                    size = (byte)instruction.GetOpRegister(n).GetSize();
                    break;
                case OpKind.Memory:
                case OpKind.MemorySegSI or OpKind.MemorySegESI or OpKind.MemorySegRSI:
                case OpKind.MemorySegDI or OpKind.MemorySegEDI or OpKind.MemorySegRDI:
                case OpKind.MemoryESDI or OpKind.MemoryESEDI or OpKind.MemoryESRDI:
                    size = (byte)instruction.MemorySize.GetSize();
                    break;
            }
        }

        for (var n = 0; n < instruction.OpCount; n++)
        {
            switch (instruction.GetOpKind(n))
            {
                case OpKind.Memory:
                    var b = instruction.MemoryBase;
                    var x = instruction.MemoryIndex;
                    if (b != Register.None)
                    {
                        addressSize = (byte)(b is Register.RIP ? 8 : b is Register.EIP ? 4 : b.GetSize());
                    }
                    else if (x != Register.None)
                    {
                        addressSize = (byte)x.GetSize();
                    }

                    break;
                case OpKind.MemorySegSI or OpKind.MemorySegDI or OpKind.MemoryESDI:
                    addressSize = 2;
                    break;
                case OpKind.MemorySegESI or OpKind.MemorySegEDI or OpKind.MemoryESEDI:
                    addressSize = 4;
                    break;
                case OpKind.MemorySegRSI or OpKind.MemorySegRDI or OpKind.MemoryESRDI:
                    addressSize = 8;
                    break;
            }
        }

        var segment = instruction.MemorySegment;
        var d = new DecodedInstruction
        {
            Instruction = instruction,
            Op = op,
            Size = size,
            AddressSize = addressSize,
            MemorySize = (byte)instruction.MemorySize.GetSize(),
            Segment = (byte)(segment is >= Register.ES and <= Register.GS ? segment - Register.ES : (int)SegmentRegister.Ds),
            NextIp = instruction.NextIP,
            Target = instruction.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 ? instruction.NearBranchTarget : 0,
            Condition = instruction.ConditionCode,
            Displacement = instruction.MemoryDisplacement64,
            Base = GprSlot(instruction.MemoryBase),
            Index = GprSlot(instruction.MemoryIndex),
            ScaleShift = (byte)BitOperations.Log2((uint)Math.Max(1, instruction.MemoryIndexScale)),
            ImmediateOperand = DecodedInstruction.NoRegister,
        };
        for (var n = 0; n < instruction.OpCount; n++)
        {
            var kind = instruction.GetOpKind(n);
            if (kind is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate64 or OpKind.Immediate8to16
                or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64 && d.ImmediateOperand == DecodedInstruction.NoRegister)
            {
                d.ImmediateOperand = (byte)n;
                d.Immediate = instruction.GetImmediate(n);
            }

            if (n > 1)
            {
                continue;
            }

            var operandKind = kind switch
            {
                OpKind.Register when instruction.GetOpRegister(n).IsGPR() => OperandKind.Register,
                OpKind.Memory => OperandKind.Memory,
                _ when d.ImmediateOperand == n => OperandKind.Immediate,
                _ => OperandKind.Other,
            };
            var info = operandKind == OperandKind.Register ? RegisterInfo[(int)instruction.GetOpRegister(n)] : (ushort)0;
            if (n == 0) { d.Kind0 = operandKind; d.Reg0 = info; }
            else { d.Kind1 = operandKind; d.Reg1 = info; }
        }

        d.Mask = d.Size == 8 ? ulong.MaxValue : d.Size == 4 ? 0xFFFF_FFFFUL : 0;
        d.Op = OpClassifier.Specialize(op, d);
        return d;
    }

    private static byte GprSlot(Register register) =>
        register == Register.None || !register.IsGPR() ? DecodedInstruction.NoRegister : (byte)(RegisterInfo[(int)register] & 0xF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong CodeLinear(ulong rip) => _bitness == 64 ? rip : (uint)(rip + _segments[(int)SegmentRegister.Cs].Base);

    private void UpdateMode()
    {
        ref var cs = ref _segments[(int)SegmentRegister.Cs];
        var longMode = (_efer & EferLma) != 0;
        _bitness = longMode && (cs.Attributes & SegmentState.AttrL) != 0 ? 64 : (cs.Attributes & SegmentState.AttrDb) != 0 ? 32 : 16;
        _codeSizeTag = _bitness == 64 ? 3 : _bitness == 32 ? 2 : 1;
        _lastPage = null;
    }

    /// <summary>Forwards the TLB's reports of stores to code pages to the VM's map and ends the running block.</summary>
    private sealed class StoreWatch(X86Cpu cpu) : IWriteMonitor
    {
        public bool IsWatched(Gfn gfn) => cpu._codeMap.IsWatched(gfn);

        public void OnWatchedWrite(Gpa gpa)
        {
            cpu._codeMap.OnWatchedWrite(gpa);
            cpu._blockBroken = true;
        }
    }
}

using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Cpu.Jit;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The translating tier's side of the vCPU: when a block becomes hot it is compiled (<see cref="BlockCompiler"/>),
/// and the compiled code reaches the vCPU's state through the members named here.
/// </summary>
/// <remarks>
/// Invariant: compiled code leaves exactly the state the interpreter would — registers, lazy flags, RIP, the retired
/// count and <c>_blockBroken</c> — at its return and at every exception it lets through (RIP is stored before each
/// instruction that can fault or calls back into the interpreter, so <c>RetireBeforeFault</c> finds the faulting one).
/// </remarks>
public sealed unsafe partial class X86Cpu // unsafe: compiled memory operands use TLB host pointers.
{
    /// <summary>
    /// Under background compilation, the instructions a hot block retires on the interpreter while its translation has
    /// not been started, after which the vCPU translates it itself (about what the interpreter retires in the time one
    /// translation takes).
    /// </summary>
    internal const long JitStealInstructions = 300_000;

    /// <summary>The default number of executions after which a block is compiled.</summary>
    public const int DefaultJitThreshold = 50;

    private const BindingFlags Private = BindingFlags.Instance | BindingFlags.NonPublic;

    internal static readonly FieldInfo GprField = typeof(X86Cpu).GetField(nameof(_gpr), Private)!;
    internal static readonly FieldInfo RipField = typeof(X86Cpu).GetField(nameof(_rip), Private)!;
    internal static readonly FieldInfo BlockBrokenField = typeof(X86Cpu).GetField(nameof(_blockBroken), Private)!;
    internal static readonly FieldInfo FlagOpField = typeof(X86Cpu).GetField(nameof(_flagOp), Private)!;
    internal static readonly FieldInfo FlagBitsField = typeof(X86Cpu).GetField(nameof(_flagBits), Private)!;
    internal static readonly FieldInfo FlagAField = typeof(X86Cpu).GetField(nameof(_flagA), Private)!;
    internal static readonly FieldInfo FlagBField = typeof(X86Cpu).GetField(nameof(_flagB), Private)!;
    internal static readonly FieldInfo FlagResultField = typeof(X86Cpu).GetField(nameof(_flagResult), Private)!;
    internal static readonly MethodInfo ReadMemoryMethod = typeof(X86Cpu).GetMethod(nameof(ReadMemory), Private, [typeof(ulong), typeof(int)])!;
    internal static readonly MethodInfo WriteMemoryMethod = typeof(X86Cpu).GetMethod(nameof(WriteMemory), Private, [typeof(ulong), typeof(int), typeof(ulong)])!;
    internal static readonly MethodInfo ToLinearMethod = typeof(X86Cpu).GetMethod(nameof(ToLinear), Private, [typeof(ulong), typeof(int)])!;
    internal static readonly MethodInfo ConditionMethod = typeof(X86Cpu).GetMethod(nameof(Condition), Private)!;
    internal static readonly MethodInfo ExecuteInterpretedMethod = typeof(X86Cpu).GetMethod(nameof(ExecuteInterpreted), Private)!;
    internal static readonly FieldInfo FlagCarryInField = typeof(X86Cpu).GetField(nameof(_flagCarryIn), Private)!;
    internal static readonly MethodInfo CarryFlagMethod = typeof(X86Cpu).GetMethod(nameof(CarryFlag), Private)!;
    internal static readonly MethodInfo ReadableHostPointerMethod = typeof(X86Cpu).GetMethod(nameof(ReadableHostPointer), Private)!;
    internal static readonly MethodInfo WritableHostPointerMethod = typeof(X86Cpu).GetMethod(nameof(WritableHostPointer), Private)!;
    internal static readonly MethodInfo PollCompiledLoopMethod = typeof(X86Cpu).GetMethod(nameof(PollCompiledLoop), Private)!;
    internal static readonly FieldInfo InstructionsField = typeof(X86Cpu).GetField(nameof(_instructions), Private)!;
    internal static readonly FieldInfo EventAtField = typeof(X86Cpu).GetField(nameof(_eventAt), Private)!;
    internal static readonly FieldInfo PendingExitField = typeof(X86Cpu).GetField(nameof(_pendingExit), Private)!;
    internal static readonly FieldInfo BlocksField = typeof(X86Cpu).GetField(nameof(_blocks), Private)!;
    internal static readonly FieldInfo Cr0Field = typeof(X86Cpu).GetField(nameof(_cr0), Private)!;
    internal static readonly FieldInfo Cr4Field = typeof(X86Cpu).GetField(nameof(_cr4), Private)!;
    internal static readonly MethodInfo TryStringInPageMethod = typeof(X86Cpu).GetMethod(nameof(TryStringInPage), Private)!;
    internal static readonly MethodInfo CountInterpretedMethod = typeof(X86Cpu).GetMethod(nameof(CountInterpreted), Private)!;
    internal static readonly FieldInfo JitChainedBlocksField = typeof(X86Cpu).GetField(nameof(_jitChainedBlocks), Private)!;
    internal static readonly MethodInfo ChainSuccessorMethod = typeof(X86Cpu).GetMethod(nameof(ChainSuccessor), Private)!;

    /// <summary>
    /// The most blocks compiled code runs chained one into the next (QEMU's <c>goto_tb</c>) before it returns to the
    /// dispatcher, whose loop serves shootdowns and stop requests: a request waits at most this many blocks (and
    /// <see cref="BlockCompiler.PollEveryPasses"/> passes of a self-loop inside one of them).
    /// </summary>
    internal const int MaxChainedBlocks = 64;

    /// <summary>The lazy-flags operation codes compiled code records (the values of the private enum).</summary>
    internal static int FlagOpAdd => (int)FlagOp.Add;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpSub => (int)FlagOp.Sub;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpLogic => (int)FlagOp.Logic;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpAdc => (int)FlagOp.Adc;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpSbb => (int)FlagOp.Sbb;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpInc => (int)FlagOp.Inc;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpDec => (int)FlagOp.Dec;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpShl => (int)FlagOp.Shl;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpShr => (int)FlagOp.Shr;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpSar => (int)FlagOp.Sar;

    /// <inheritdoc cref="FlagOpAdd"/>
    internal static int FlagOpMul => (int)FlagOp.Mul;

    private ExecutionTier _tier = ExecutionTier.Jit;
    private int _jitThreshold = DefaultJitThreshold;
    private bool _backgroundCompilation;
    private Action<BlockCompilation>? _compileQueue;
    private long _loopEpoch;
    private long _jitBlocksCompiled;
    private long _jitCompileTicks;
    private long _jitInstructions;

    // The retired count where the running compiled code was entered (NoCompiledRun outside it): every instruction
    // retired until it returns — a self-loop's passes, chained blocks, its interpreter fallbacks — is counted as
    // retired in compiled code then, or, when a fault ends it, by RetireBeforeFault (so compiled code keeps no count
    // of its own per pass).
    private long _jitRunStart = NoCompiledRun;
    private const long NoCompiledRun = -1;
    private int _chainedBlocksLeft;
    private long _jitChainedBlocks;
    private long _jitLoopTraces;

    /// <summary>How this vCPU executes guest code (default <see cref="ExecutionTier.Jit"/>); set between runs.</summary>
    public ExecutionTier Tier
    {
        get => _tier;
        set => _tier = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "not an execution tier");
    }

    /// <summary>The number of executions after which a block is compiled (at least 1); set between runs.</summary>
    public int JitThreshold
    {
        get => _jitThreshold;
        set => _jitThreshold = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "the JIT threshold must be at least 1");
    }

    /// <summary>
    /// True: a hot block is translated on a background thread while this vCPU goes on interpreting it, and runs compiled
    /// from the first execution after the translation is done (the retired count, state and output are the same either
    /// way; only the share of instructions retired in compiled code depends on the timing). False (the default): it is
    /// translated on the vCPU thread when it becomes hot and runs compiled at once. Set between runs.
    /// </summary>
    public bool BackgroundCompilation
    {
        get => _backgroundCompilation;
        set => _backgroundCompilation = value;
    }

    /// <summary>
    /// Where background compilations go instead of <see cref="BackgroundCompiler"/> (tests: to run them at a chosen
    /// point); null for the compiler thread.
    /// </summary>
    internal Action<BlockCompilation>? CompileQueue
    {
        get => _compileQueue;
        set => _compileQueue = value;
    }

    /// <summary>A snapshot of the translating tier's counters.</summary>
    public JitStats JitStats => new()
    {
        BlocksCompiled = _jitBlocksCompiled,
        CompileTime = Stopwatch.GetElapsedTime(0, _jitCompileTicks),
        Instructions = _jitInstructions,
        ChainedBlocks = _jitChainedBlocks,
        InterpretedForms = InterpretedFormCounts(),
        LoopTraces = _jitLoopTraces,
    };

    // Per (Iced code, repeated) the executions compiled code left to the interpreter, counted only when the blocks were
    // compiled with the profile on (BlockCompiler.ProfileInterpreted): null until the first count.
    private long[]? _interpretedInBlock;
    private static readonly int CodeSlots = (Enum.GetValues<Iced.Intel.Code>().Max(m => (int)m) + 1) * 2;

    private List<KeyValuePair<string, long>>? InterpretedFormCounts()
    {
        if (_interpretedInBlock is not { } counts)
        {
            return null;
        }

        var forms = new List<KeyValuePair<string, long>>();
        for (var k = 0; k < counts.Length; k++)
        {
            if (counts[k] != 0)
            {
                var code = ((Iced.Intel.Code)(k >> 1)).ToString().ToLowerInvariant();
                forms.Add(KeyValuePair.Create((k & 1) != 0 ? "rep " + code : code, counts[k]));
            }
        }

        forms.Sort((a, b) => b.Value.CompareTo(a.Value));
        return forms;
    }

    // Called by compiled code (profile on) before it hands an instruction to the interpreter.
    private void CountInterpreted(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var repeated = (i.HasRepPrefix || i.HasRepnePrefix) && d.Op is Op.Movs or Op.Stos or Op.Lods or Op.Cmps or Op.Scas or Op.Ins or Op.Outs;
        (_interpretedInBlock ??= new long[CodeSlots])[((int)i.Code * 2) + (repeated ? 1 : 0)]++;
    }

    // Runs a block through its compiled code when it has some (and the budget covers a whole pass), compiling it when
    // it has become hot; returns false when the interpreter must run it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryRunCompiled(CodeBlock block, long budget)
    {
        var code = block.Compiled;
        if (code is null)
        {
            if (_tier != ExecutionTier.Jit)
            {
                return false;
            }

            if (block.Compilation is { } compilation)
            {
                code = Publish(block, compilation);
                if (code is null)
                {
                    return false;
                }
            }
            else if (++block.Executions < _jitThreshold)
            {
                return false;
            }
            else if (_backgroundCompilation)
            {
                Queue(block);
                return false;
            }
            else
            {
                code = Compile(block);
            }
        }

        var length = block.Instructions.Length;
        if (budget < length)
        {
            return false;
        }

        _loopEpoch = _tlb.FlushEpoch;
        _chainedBlocksLeft = MaxChainedBlocks;
        var limit = _instructions + budget;
        _jitRunStart = _instructions;
        var executed = code(this, block, limit);
        _instructions += executed;
        _jitInstructions += _instructions - _jitRunStart;
        _jitRunStart = NoCompiledRun;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private CompiledBlockCode Compile(CodeBlock block)
    {
        block.LoopTrace ??= LoopTrace(block);
        var started = Stopwatch.GetTimestamp();
        var code = BlockCompiler.Compile(block, _bitness);
        block.Compiled = code;
        _jitBlocksCompiled++;
        _jitLoopTraces += block.LoopTrace is null ? 0 : 1;
        _jitCompileTicks += Stopwatch.GetTimestamp() - started;
        return code;
    }

    // A block has become hot under background compilation: its translation is queued and the interpreter goes on
    // running it until the translation is published.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Queue(CodeBlock block)
    {
        block.LoopTrace ??= LoopTrace(block);
        var compilation = new BlockCompilation(block, _bitness);
        block.Compilation = compilation;
        (_compileQueue ?? BackgroundCompiler.Enqueue)(compilation);
    }

    // A hot block whose translation was queued: the translation once it is done, published into the block on this
    // (the vCPU's) thread — only while the block's code page is unchanged, so code compiled from instructions that
    // have since been overwritten never runs (the block itself is then no longer found: lookups check the version
    // too) — or null while the interpreter must still run it.
    [MethodImpl(MethodImplOptions.NoInlining)]
    // A block that keeps running while its translation has not been started (the compiler thread is busy or not
    // scheduled) is translated by the vCPU itself once it has retired JitStealInstructions on the interpreter: about
    // what the interpreter retires in the time a translation takes, so a short-lived block never stalls the vCPU and
    // a long-running one does not wait on a starved compiler thread.
    private CompiledBlockCode? Publish(CodeBlock block, BlockCompilation compilation)
    {
        if (!compilation.IsDone
            && (++block.Executions * (long)block.Instructions.Length < JitStealInstructions || !compilation.TryRun()))
        {
            return null;
        }

        if (block.Version != _codeMap.VersionOf(block.Gfn))
        {
            return null;
        }

        if (compilation.Error is { } error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        var code = compilation.Code!;
        block.Compiled = code;
        _jitBlocksCompiled++;
        _jitLoopTraces += block.LoopTrace is null ? 0 : 1;
        _jitCompileTicks += compilation.Ticks;
        return code;
    }

    // A hot block that ends in a branch to a linked successor whose own last branch jumps back to the block's start
    // (the two blocks of a loop body split by a conditional): the two instruction arrays, concatenated, for the
    // translation to compile as one loop (BlockCompiler), or null. Only where the successor cannot be anything but
    // what the link says for as long as the block itself is current: both linkable, ending in a direct branch (no
    // instruction that changes paging or the mode lies in either), on the same guest-virtual page, decoded from the
    // same frame in the same version, not overlapping (a fault's RIP names one instruction of the trace), and the
    // link made in the current TLB epoch.
    private DecodedInstruction[]? LoopTrace(CodeBlock block)
    {
        if (!block.Linkable || block.LinkEpoch != _tlb.FlushEpoch)
        {
            return null;
        }

        ref var end = ref block.Instructions[^1];
        if (end.Op is not (Op.Jcc or Op.Jmp) || end.Target == block.StartRip)
        {
            return null;
        }

        var partner = block.NextRip == end.Target || (end.Op == Op.Jcc && block.NextRip == end.NextIp) ? block.Next : null;
        if (!IsLoopPartner(block, partner))
        {
            partner = block.OtherRip == end.Target || (end.Op == Op.Jcc && block.OtherRip == end.NextIp) ? block.Other : null;
            if (!IsLoopPartner(block, partner))
            {
                return null;
            }
        }

        return [.. block.Instructions, .. partner!.Instructions];
    }

    private static bool IsLoopPartner(CodeBlock block, CodeBlock? partner)
    {
        if (partner is null || partner == block || !partner.Linkable || partner.Gfn != block.Gfn || partner.Version != block.Version
            || (partner.StartRip ^ block.StartRip) >> Paging.PageShift != 0)
        {
            return false;
        }

        ref var end = ref partner.Instructions[^1];
        var blockEnd = block.Instructions[^1].NextIp;
        return end.Op is Op.Jcc or Op.Jmp && end.Target == block.StartRip
            && (partner.StartRip >= blockEnd || end.NextIp <= block.StartRip);
    }

    // At the normal end of a compiled block that may be linked: the compiled successor at RIP to continue into
    // without returning to the dispatcher, with the block boundary's accounting done (the ending block retired, the
    // successor running), or null when the dispatcher must look first. Chained only when the dispatcher would go
    // straight on to the same block: the link is current (no TLB flush since it was made, the successor's code page
    // unchanged), no event is due and no exit is pending, the successor's whole pass fits the budget, and fewer than
    // MaxChainedBlocks blocks have been chained since the dispatcher last ran its shootdown and stop checks.
    // Inlined into the compiled code (a call from it would start on the unoptimised tier).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private CodeBlock? ChainSuccessor(CodeBlock from, long limit)
    {
        if (--_chainedBlocksLeft < 0 || from.LinkEpoch != _tlb.FlushEpoch || _pendingExit.HasValue)
        {
            return null;
        }

        var next = from.NextRip == _rip ? from.Next : from.OtherRip == _rip ? from.Other : null;
        if (next?.Compiled is null || next.Version != _codeMap.VersionOf(next.Gfn))
        {
            return null;
        }

        var length = from.Instructions.Length;
        var retired = _instructions + length;
        if (retired >= _eventAt || retired + next.Instructions.Length > limit)
        {
            return null;
        }

        _instructions = retired;
        _blocks++;
        _decodeHits++;
        _jitChainedBlocks++;
        _loopEpoch = _tlb.FlushEpoch;
        _runningBlock = next;
        return next;
    }

    // The host address of an in-page operand the TLB allows reading, or null (the interpreter's path then handles the
    // access).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* ReadableHostPointer(ulong linear, int size) =>
        (linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Read, out var host)
            ? host
            : null;

    // The host address of an in-page operand the TLB allows writing, or null (the interpreter's path then handles
    // the access: a miss, a page crossing, a watched code page or MMIO).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* WritableHostPointer(ulong linear, int size) =>
        (linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Write, out var host)
            ? host
            : null;

    // The interpreter's handler for one instruction, called by compiled code for what it does not translate.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ExecuteInterpreted(ref DecodedInstruction d) => Execute(ref d);

    // Every few passes of a compiled self-loop: serves the port's shootdown requests, and says whether the loop may go
    // on — no shootdown or flush changed the TLB since the block was entered, no stop was asked for and the block's
    // code page is unchanged.
    private bool PollCompiledLoop(CodeBlock block)
    {
        _mmu.Port.ServiceRequests();
        return _tlb.FlushEpoch == _loopEpoch && !_stop.IsStopRequested && _codeMap.VersionOf(block.Gfn) == block.Version;
    }
}

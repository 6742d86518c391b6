namespace Hypervisor.Vmm.Cpu;

/// <summary>A snapshot of one vCPU's translating-tier counters.</summary>
public readonly record struct JitStats
{
    /// <summary>Blocks compiled to IL.</summary>
    public long BlocksCompiled { get; init; }

    /// <summary>Time spent compiling them (IL emission and the delegate's creation; the .NET JIT's own work happens at first call).</summary>
    public TimeSpan CompileTime { get; init; }

    /// <summary>Instructions retired in compiled code.</summary>
    public long Instructions { get; init; }

    /// <summary>Blocks entered straight from the compiled block before them, without the dispatcher (chaining).</summary>
    public long ChainedBlocks { get; init; }

    /// <summary>
    /// Of <see cref="BlocksCompiled"/>, those compiled together with their loop partner as one two-block loop (a loop
    /// body split by a conditional branch, run without leaving the compiled method; its inner block boundary counts as
    /// a chained block).
    /// </summary>
    public long LoopTraces { get; init; }

    /// <summary>Field-by-field sum (the counters of several vCPUs together).</summary>
    public static JitStats operator +(JitStats a, JitStats b) => new()
    {
        BlocksCompiled = a.BlocksCompiled + b.BlocksCompiled,
        CompileTime = a.CompileTime + b.CompileTime,
        Instructions = a.Instructions + b.Instructions,
        ChainedBlocks = a.ChainedBlocks + b.ChainedBlocks,
        LoopTraces = a.LoopTraces + b.LoopTraces,
    };
}

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
    /// With <c>HV_JIT_INTERPRETED=1</c> in the environment when the blocks were compiled: per form (Iced's code, such as
    /// <c>cmp_rm8_r8</c>, with <c>rep</c> for a repeated string instruction), the executions that compiled blocks left to the interpreter's
    /// handler, most frequent first; null otherwise.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, long>>? InterpretedForms { get; init; }

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
        InterpretedForms = a.InterpretedForms is null ? b.InterpretedForms : b.InterpretedForms is null ? a.InterpretedForms
            : a.InterpretedForms.Concat(b.InterpretedForms).GroupBy(p => p.Key)
                .Select(g => KeyValuePair.Create(g.Key, g.Sum(p => p.Value))).OrderByDescending(p => p.Value).ToList(),
        LoopTraces = a.LoopTraces + b.LoopTraces,
    };
}

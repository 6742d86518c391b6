using Hypervisor.GuestMmu.Addresses;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// A decoded basic block: instructions from <see cref="StartRip"/> up to and including the first that ends a
/// block (a branch, a mode change, I/O), never crossing its 4 KiB page. Remembers up to two successors
/// (the taken and the fall-through path) so the next block is found without a TLB lookup.
/// </summary>
/// <remarks>
/// A successor link is valid only while the TLB's <see cref="GuestMmu.Walker.SoftTlb.FlushEpoch"/> equals
/// <see cref="LinkEpoch"/> (no translation changed) and the successor's page version still matches (no store
/// hit its code). Only blocks ending in a plain branch or falling through are linked: their successor runs in
/// the same mode.
/// </remarks>
internal sealed class CodeBlock(ulong startRip, DecodedInstruction[] instructions, Gfn gfn, int version, bool linkable)
{
    /// <summary>The guest-virtual RIP the block was decoded at (branch targets in it are absolute for this RIP).</summary>
    public ulong StartRip { get; } = startRip;

    /// <summary>The instructions, in order.</summary>
    public DecodedInstruction[] Instructions { get; } = instructions;

    /// <summary>The guest frame the block was decoded from.</summary>
    public Gfn Gfn { get; } = gfn;

    /// <summary>The <see cref="CodePageMap"/> version of <see cref="Gfn"/> when the block was decoded.</summary>
    public int Version { get; } = version;

    /// <summary>True when the block may be linked to its successors.</summary>
    public bool Linkable { get; } = linkable;

    /// <summary>The TLB flush epoch the links were made in.</summary>
    public long LinkEpoch;

    /// <summary>First successor's RIP.</summary>
    public ulong NextRip;

    /// <summary>First successor.</summary>
    public CodeBlock? Next;

    /// <summary>Second successor's RIP.</summary>
    public ulong OtherRip;

    /// <summary>Second successor.</summary>
    public CodeBlock? Other;

    /// <summary>
    /// The block's instructions followed by those of its loop partner — a successor on the same page, decoded in the
    /// same version, whose last branch goes back to this block's start — when the two are compiled as one loop (a
    /// two-block loop then runs without leaving its compiled method); null when the block is compiled alone. Set once,
    /// on the vCPU thread, before the block's translation starts; never cleared (compiled code reads it).
    /// </summary>
    public DecodedInstruction[]? LoopTrace;

    /// <summary>How many times the interpreter has run the block (counted until it is compiled).</summary>
    public int Executions;

    /// <summary>The block's translation, once it has become hot (dropped with the block when its page changes).</summary>
    public Jit.CompiledBlockCode? Compiled;

    /// <summary>The block's translation under way off the vCPU thread, once it has become hot (null before).</summary>
    public Jit.BlockCompilation? Compilation;
}

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// A decoded basic block: instructions from <see cref="StartRip"/> up to and including the first that ends a
/// block (a branch, a mode change, I/O), never crossing its 4 KiB page.
/// </summary>
internal sealed class CodeBlock(ulong startRip, DecodedInstruction[] instructions)
{
    /// <summary>The guest-virtual RIP the block was decoded at (branch targets in it are absolute for this RIP).</summary>
    public ulong StartRip { get; } = startRip;

    /// <summary>The instructions, in order.</summary>
    public DecodedInstruction[] Instructions { get; } = instructions;
}

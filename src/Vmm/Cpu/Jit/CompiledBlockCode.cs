namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// A basic block translated to IL by <see cref="BlockCompiler"/>. Runs <paramref name="block"/>'s instructions on
/// <paramref name="cpu"/> with the interpreter's exact architectural effects; a block that branches back to its own
/// start keeps looping inside the compiled code while the budget and the vCPU's block-boundary checks allow, and a
/// block that may be linked continues into its compiled successor (a tail call) while the vCPU allows chaining.
/// </summary>
/// <param name="cpu">The vCPU (its registers, lazy flags and memory path are used directly).</param>
/// <param name="block">The block the code was compiled from (its instructions are the fallback's operands).</param>
/// <param name="limit">The retired-instruction count the run must not pass.</param>
/// <returns>
/// The instructions retired in the last pass through the block (earlier passes of a self-loop have already been
/// added to the retired count), or in the last block of a chain (the blocks before it have been added); fewer than
/// that block's length when an instruction ended it early.
/// </returns>
internal delegate int CompiledBlockCode(X86Cpu cpu, CodeBlock block, long limit);

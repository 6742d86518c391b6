namespace Hypervisor.Vmm.Cpu;

/// <summary>How a vCPU executes guest code.</summary>
public enum ExecutionTier
{
    /// <summary>The interpreter only: every block is dispatched instruction by instruction (tier 0).</summary>
    Interp,

    /// <summary>
    /// Hot blocks (run more than <see cref="X86Cpu.JitThreshold"/> times) are translated to IL and run by the .NET JIT;
    /// cold code and what the translator does not cover stay on the interpreter.
    /// </summary>
    Jit,
}

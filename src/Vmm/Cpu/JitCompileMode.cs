namespace Hypervisor.Vmm.Cpu;

/// <summary>Where the translating tier compiles a block that has become hot.</summary>
public enum JitCompileMode
{
    /// <summary>
    /// On a background thread, while the vCPU goes on interpreting the block; it runs compiled from the first execution
    /// after its translation is done (<see cref="X86Cpu.BackgroundCompilation"/>).
    /// </summary>
    Background,

    /// <summary>On the vCPU thread, at once; the block runs compiled from that execution on.</summary>
    Sync,
}

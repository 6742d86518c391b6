using Hypervisor.Vmm.Tests.Cpu;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The CPU test machine's layout as the interpreter fuzzer uses it, with the page of exception handlers.</summary>
internal static class CpuTestMachineAddresses
{
    /// <summary>Where the random code goes.</summary>
    public const ulong Code = CpuTestMachine.CodeAddress;

    /// <summary>The tests' scratch data.</summary>
    public const ulong Data = CpuTestMachine.DataAddress;

    /// <summary>The initial stack pointer.</summary>
    public const ulong StackTop = CpuTestMachine.StackTop;

    /// <summary>256 HLT bytes: vector <c>v</c>'s gate points at <c>Handlers + v</c>, so the halt address names the vector delivered.</summary>
    public const ulong Handlers = 0x3000;
}

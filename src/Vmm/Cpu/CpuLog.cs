using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cpu;

/// <summary>The interpreter's log messages (category <see cref="X86Cpu.LogCategory"/>).</summary>
internal static partial class CpuLog
{
    /// <summary>A guest touched an MSR outside the model: the access is #GP (logged once per MSR and direction per vCPU).</summary>
    [LoggerMessage(EventId = 1, EventName = "unmodelled_msr", Level = LogLevel.Warning,
        Message = "vCPU {Vcpu}: {Access} of MSR 0x{Msr:x} at RIP 0x{Rip:x}: not in the MSR model, #GP (further accesses to it are not logged)")]
    public static partial void UnmodelledMsr(ILogger logger, int vcpu, string access, uint msr, ulong rip);
}

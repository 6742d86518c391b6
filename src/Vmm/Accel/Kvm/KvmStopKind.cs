namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>Why <see cref="KvmMachine.Run"/> returned.</summary>
public enum KvmStopKind
{
    /// <summary>A device (debug exit, power-off) posted a stop request; <see cref="KvmRunResult.ExitStatus"/> is the device's status.</summary>
    DeviceStop,

    /// <summary>The guest executed HLT (KVM_EXIT_HLT; no in-kernel irqchip, so nothing can wake it).</summary>
    Halted,

    /// <summary>The guest triple-faulted or otherwise reset its CPU (KVM_EXIT_SHUTDOWN).</summary>
    Shutdown,

    /// <summary>The vCPU could not enter the guest (KVM_EXIT_FAIL_ENTRY); the hardware reason is in the detail.</summary>
    FailEntry,

    /// <summary>KVM hit an internal error, typically an instruction it could not emulate (KVM_EXIT_INTERNAL_ERROR).</summary>
    InternalError,

    /// <summary>The run's time limit elapsed.</summary>
    Timeout,

    /// <summary>The caller's cancellation token was cancelled.</summary>
    Cancelled,

    /// <summary>KVM reported an exit this run loop does not handle; its reason is in the detail.</summary>
    UnhandledExit,
}

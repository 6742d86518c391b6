namespace Hypervisor.Vmm.Machine;

/// <summary>How a VM run ended (or, for <see cref="Vm.Progress"/>, that it has not).</summary>
/// <remarks><see cref="VmExitStatus"/> maps each to the run's exit status.</remarks>
public enum VmStopKind
{
    /// <summary>Not stopped: a <see cref="Vm.Progress"/> snapshot of a VM that is running or has not run yet.</summary>
    Running,

    /// <summary>The guest asked to exit through a device (debug-exit port, ACPI power-off, a reset through the i8042).</summary>
    GuestExit,

    /// <summary>The boot vCPU halted with nothing that could wake it (exit status <see cref="VmExitStatus.Halted"/>, 5).</summary>
    Halted,

    /// <summary>The vCPU shut down and the accelerator cannot say why (KVM_EXIT_SHUTDOWN: usually a triple fault).</summary>
    Shutdown,

    /// <summary>The guest triple-faulted: an exception could not be delivered even as a double fault.</summary>
    TripleFault,

    /// <summary>The accelerator could not continue (a mode the interpreter does not model, a failed VM entry, an exit KVM could not handle).</summary>
    InternalError,

    /// <summary>The run hit its instruction limit (emulated only).</summary>
    InstructionLimit,

    /// <summary>The run hit its wall-clock timeout.</summary>
    Timeout,

    /// <summary>The caller cancelled the run.</summary>
    Cancelled,

    /// <summary>
    /// A guest access needed a page and the host had none, even after reclaim: the VM's cgroup is at its limit
    /// (<see cref="VmOptions.HostMemoryBytes"/>) and swap is full (Linux's VM_FAULT_OOM under KVM).
    /// </summary>
    HostOutOfMemory,

    /// <summary>
    /// A guest page could not be read back from swap: the device failed the read or the slot's checksum did not match
    /// (Linux's VM_FAULT_HWPOISON/SIGBUS under KVM). No wrong data reached the guest.
    /// </summary>
    MemoryFailure,
}

namespace Hypervisor.Vmm.Machine;

/// <summary>How a VM run ended.</summary>
public enum VmStopKind
{
    /// <summary>The guest asked to exit (debug-exit port, ACPI power-off).</summary>
    GuestExit,

    /// <summary>The boot vCPU halted with nothing that could wake it.</summary>
    Halted,

    /// <summary>The guest triple-faulted: the machine shut down.</summary>
    TripleFault,

    /// <summary>The VM could not continue (an unsupported mode switch, a broken walk).</summary>
    InternalError,

    /// <summary>The run hit its instruction limit.</summary>
    InstructionLimit,

    /// <summary>The run hit its wall-clock timeout or was cancelled.</summary>
    Timeout,
}

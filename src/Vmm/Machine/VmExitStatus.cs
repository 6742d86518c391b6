using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// The one mapping from how a run ended to its statuses, for every accelerator: the QEMU-style exit status, the guest's
/// own exit code, and the exit code of <c>hv run</c>.
/// </summary>
public static class VmExitStatus
{
    /// <summary>The status of a run that broke the VM (triple fault, shutdown, internal error, host out of memory, memory failure).</summary>
    public const int Broken = 3;

    /// <summary>The status of a run stopped at a limit (instructions, timeout) or cancelled.</summary>
    public const int Limit = 4;

    /// <summary>
    /// The status of a run whose boot vCPU halted with nothing that could wake it (HLT with IF clear, or with no
    /// interrupt pending and no timer armed). QEMU would wait forever there; a guest that means to stop says so through
    /// the debug-exit port or ACPI power-off.
    /// </summary>
    public const int Halted = 5;

    /// <summary>
    /// The QEMU-style exit status: the device's status for a guest exit (<c>(value&lt;&lt;1)|1</c> from the debug-exit
    /// port, 0 from ACPI power-off and from a guest reset, which stops the VM as QEMU's <c>-no-reboot</c>), <see cref="Halted"/> for a halt nothing can wake, <see cref="Broken"/> or
    /// <see cref="Limit"/> otherwise (QEMU has no equivalent for those), and 0 while still running.
    /// </summary>
    /// <param name="kind">How the run ended.</param>
    /// <param name="request">The stop request devices posted, or null.</param>
    public static int Of(VmStopKind kind, VmStop? request) => kind switch
    {
        VmStopKind.GuestExit => request?.ExitStatus ?? 0,
        VmStopKind.Running => 0,
        VmStopKind.Halted => Halted,
        VmStopKind.Shutdown or VmStopKind.TripleFault or VmStopKind.InternalError or VmStopKind.HostOutOfMemory or VmStopKind.MemoryFailure => Broken,
        VmStopKind.InstructionLimit or VmStopKind.Timeout or VmStopKind.Cancelled => Limit,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"stop kind {kind} has no exit status: it is not a member of {nameof(VmStopKind)}"),
    };

    /// <summary>
    /// The guest's own exit code: the value it wrote to the debug-exit port 0xF4 (so the status is <c>(code&lt;&lt;1)|1</c>),
    /// 0 for ACPI power-off or a guest reset; null when the guest halted, the VM broke, hit a limit or is still running.
    /// </summary>
    /// <param name="kind">How the run ended.</param>
    /// <param name="request">The stop request devices posted, or null.</param>
    public static int? GuestExitCodeOf(VmStopKind kind, VmStop? request) => kind switch
    {
        VmStopKind.GuestExit => request is { Reason: VmStopReason.Shutdown } ? (int)((uint)request.ExitStatus >> 1) : 0,
        _ => null,
    };

    /// <summary>The exit code of <c>hv run</c>: the guest's own code when it has one, else the run's status (3, 4 or 5).</summary>
    /// <param name="guestExitCode">The guest's code, or null.</param>
    /// <param name="status">The QEMU-style status of the run.</param>
    public static int ExitCode(int? guestExitCode, int status) => guestExitCode ?? status;

    /// <summary>True for the stops that broke the VM, whose report shows the registers.</summary>
    /// <param name="kind">How the run ended.</param>
    public static bool BreaksTheVm(VmStopKind kind) =>
        kind is VmStopKind.Shutdown or VmStopKind.TripleFault or VmStopKind.InternalError or VmStopKind.HostOutOfMemory or VmStopKind.MemoryFailure;
}

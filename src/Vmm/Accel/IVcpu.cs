using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Accel;

/// <summary>One vCPU of an <see cref="IAccelerator"/>: its initial state, its run loop, its registers and counters.</summary>
/// <remarks>Threads: <see cref="Run"/> runs on the calling thread (the vCPU's thread), one call at a time;
/// <see cref="SetInitialState"/> and <see cref="CaptureRegisters"/> are called only while the vCPU is not running;
/// <see cref="Counters"/> may be read from any thread (figures may lag by one block or one exit).</remarks>
public interface IVcpu
{
    /// <summary>The vCPU's id (its initial APIC id).</summary>
    int Id { get; }

    /// <summary>The vCPU's counters so far.</summary>
    VcpuCounters Counters { get; }

    /// <summary>Loads the state a boot protocol (or, for an application processor, its start-up) hands over.</summary>
    /// <param name="state">Segment caches, descriptor tables, control registers and general registers.</param>
    void SetInitialState(in InitialCpuState state);

    /// <summary>
    /// Runs the vCPU until the guest stops it (a device's stop request, HLT with nothing to wake it, a triple fault or
    /// shutdown), the accelerator cannot continue, the accelerator's own limit is reached, or <paramref name="stop"/> is
    /// cancelled (<see cref="Machine.VmStopKind.Cancelled"/>, whatever the reason the VM had for cancelling it).
    /// </summary>
    /// <param name="stop">Cancelled by the VM at its timeout, at its caller's request, or when another vCPU ended the run.</param>
    /// <returns>Why the vCPU stopped; never <see cref="Machine.VmStopKind.Running"/>.</returns>
    VcpuExit Run(CancellationToken stop);

    /// <summary>The vCPU's registers now (between runs).</summary>
    RegisterSnapshot CaptureRegisters();
}

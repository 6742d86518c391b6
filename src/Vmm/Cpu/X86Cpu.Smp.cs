namespace Hypervisor.Vmm.Cpu;

/// <summary>What a VM with several vCPUs asks of one between runs: whether a halted vCPU has something to wake for.</summary>
public sealed partial class X86Cpu
{
    /// <summary>
    /// After a run that ended halted: true when the vCPU now has an event it can take — an NMI it is not blocking, or
    /// with IF set an interrupt above its processor priority — so it resumes after its HLT and takes it at the first
    /// block boundary. Call on the vCPU's thread while it is not running.
    /// </summary>
    public bool CanWakeFromHalt =>
        (_apic.NmiPending && !_nmiBlocked) || ((_rflags & FlagIf) != 0 && _apic.HighestDeliverable >= 0);

    /// <summary>
    /// Set (by the accelerator of a VM with several vCPUs) to say whether another vCPU is running guest code. A HLT that a
    /// timer could wake then does not skip this vCPU's clock to the deadline: the vCPU halts with
    /// <see cref="TimedHaltDeadline"/> and sleeps until an interrupt arrives or the running vCPUs' clocks pass the
    /// deadline, so an idle vCPU's virtual time never races ahead of a busy one's. Null (one vCPU, or every other vCPU
    /// asleep): the clock skips, as before.
    /// </summary>
    public Func<bool>? PeersRunning { get; set; }

    /// <summary>
    /// After a <see cref="CpuExitReason.Halted"/> exit of a timed halt: the TSC at which this vCPU's timer (or the
    /// platform's) can wake it; null after a halt that nothing of the vCPU's own can end.
    /// </summary>
    public long? TimedHaltDeadline { get; private set; }

    /// <summary>The TSC as another thread may read it: approximate (counted at block boundaries), never ahead of the vCPU's own view.</summary>
    public long TscSnapshot => Volatile.Read(ref _instructions) + Volatile.Read(ref _tscOffset);

    /// <summary>
    /// Moves this vCPU's clock forward to <paramref name="tsc"/> (no-op when it is already there), counting the
    /// difference as time spent halted. Only on the vCPU's own thread, between runs.
    /// </summary>
    /// <param name="tsc">The TSC to reach.</param>
    public void AdvanceClockTo(long tsc)
    {
        var skip = tsc - Tsc;
        if (skip <= 0)
        {
            return;
        }

        Volatile.Write(ref _tscOffset, _tscOffset + skip);
        _haltedTicks += skip;
        _eventAt = 0;
    }
}

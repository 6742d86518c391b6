using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// Runs the host MM auditor and the MMU auditor on a running VM after every reclaim batch, each time at a point where no
/// host operation is in flight: after each background-reclaimer (kswapd) step, with kswapd paused and the vCPU held
/// between two interpreter slices (<see cref="Accel.Emulated.EmulatedVcpu.SliceGate"/>); and after every slice of guest
/// code in which the vCPU's own faults reclaimed (direct reclaim), from the vCPU's thread with kswapd paused; and after
/// every host access of the demo's own (the read-back) that reclaimed.
/// </summary>
/// <remarks>Lock order: kswapd's step lock → the vCPU's slice gate. Every audit runs with the step lock held, so audits
/// never overlap.</remarks>
internal sealed class BatchAuditor
{
    private readonly Vm _vm;
    private readonly Lock _sliceGate = new();
    private readonly int _keep;
    private readonly List<string> _violations = [];
    private long _lastDirectScanned;

    /// <summary>Hooks the auditor into <paramref name="vm"/> (booted, not yet run).</summary>
    /// <param name="vm">An emulated VM with a host memory limit.</param>
    /// <param name="keep">The most violations kept.</param>
    public BatchAuditor(Vm vm, int keep)
    {
        _vm = vm;
        _keep = keep;
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceGate = _sliceGate;
        vcpu.BetweenSlices = AfterSlice;
        vm.ReclaimStepped = AfterKswapdStep;
    }

    /// <summary>Audits run so far.</summary>
    public long Audits { get; private set; }

    /// <summary>Audits after a kswapd step.</summary>
    public long KswapdAudits { get; private set; }

    /// <summary>Audits after a slice of guest code whose faults reclaimed.</summary>
    public long DirectAudits { get; private set; }

    /// <summary>Audits after host accesses (the read-back) that reclaimed.</summary>
    public long HostAccessAudits { get; private set; }

    /// <summary>The first violations found (at most the number given).</summary>
    public IReadOnlyList<string> Violations => _violations;

    /// <summary>Audits now; the caller guarantees that no vCPU access is in flight.</summary>
    public void AuditNow()
    {
        var kswapd = _vm.ReclaimDaemon;
        kswapd?.Pause();
        try
        {
            Audit();
        }
        finally
        {
            kswapd?.Resume();
        }
    }

    /// <summary>Audits when the caller's host accesses reclaimed since the last audit; call only at a quiescent point.</summary>
    public void AfterHostAccess()
    {
        if (_vm.Host!.Reclaim.Stats.PgscanDirect != _lastDirectScanned)
        {
            AuditNow();
            HostAccessAudits++;
        }
    }

    private void AfterSlice()
    {
        if (_vm.Host!.Reclaim.Stats.PgscanDirect != _lastDirectScanned)
        {
            AuditNow();
            DirectAudits++;
        }
    }

    private void AfterKswapdStep()
    {
        lock (_sliceGate)
        {
            Audit();
            KswapdAudits++;
        }
    }

    private void Audit()
    {
        _lastDirectScanned = _vm.Host!.Reclaim.Stats.PgscanDirect;
        Audits++;
        Record(HostMmAuditor.Check(_vm.Host));
        Record(MmuAuditor.Check(_vm.Mmu!));
    }

    private void Record(IReadOnlyList<string> found)
    {
        foreach (var violation in found)
        {
            if (_violations.Count < _keep)
            {
                _violations.Add($"audit {Audits}: {violation}");
            }
        }
    }
}

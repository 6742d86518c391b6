using Hypervisor.HostMm.Ksm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// The KSM side of a VM run under <see cref="VmOptions.Ksm"/>: the host-wide scanner counters under Linux's
/// <c>/sys/kernel/mm/ksm</c> names, this VM's process counters (<c>/proc/PID/ksm_stat</c>) and the host's KSM
/// copy-on-write breaks. Taken without stopping anything: each figure is exact, the figures are not mutually consistent
/// while VMs run.
/// </summary>
public sealed record KsmSnapshot
{
    /// <summary>The host-wide scanner counters (<c>pages_shared</c>, <c>pages_sharing</c>, <c>general_profit</c>, …).</summary>
    public required KsmStats Host { get; init; }

    /// <summary>This VM's process: <c>ksm_merging_pages</c>, <c>ksm_zero_pages</c>, <c>ksm_process_profit</c>.</summary>
    public required KsmProcessStats Process { get; init; }

    /// <summary>Write faults, host-wide, that copied a KSM page (<c>cow_ksm</c>).</summary>
    public required long CowKsm { get; init; }

    /// <summary>ksmd's knob <c>pages_to_scan</c>.</summary>
    public required int PagesToScan { get; init; }

    /// <summary>ksmd's knob <c>sleep_millisecs</c>.</summary>
    public required int SleepMilliseconds { get; init; }

    /// <summary>Batches of the host's ksmd that scanned pages.</summary>
    public long KsmdSteps { get; init; }
}

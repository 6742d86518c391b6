using Hypervisor.HostMm;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Vmm.Demo;

/// <summary>What one run of <see cref="HostDemo"/> produced.</summary>
/// <param name="Seed">The seed of the random operations.</param>
/// <param name="RandomOperations">How many random operations were issued.</param>
/// <param name="ScriptThreadId">Managed id of the thread that ran the script (shown as "main").</param>
/// <param name="MmId">The id of the demo's process.</param>
/// <param name="ChildMmId">The id of the process its fork created.</param>
/// <param name="ZeroPfn">The host's shared zero page.</param>
/// <param name="Layout">Where the mapping, the interval subscription and the user regions are.</param>
/// <param name="Timeline">Every callback and host step, in order, unfolded.</param>
/// <param name="UserEventReads">Each read of the user event channel, in order.</param>
/// <param name="ChainStats">The chain's counters at the end.</param>
/// <param name="ChannelStats">The user channel's counters at the end.</param>
/// <param name="MmStatsBeforeExit">The process's counters just before it exited.</param>
/// <param name="HostStatsBeforeExit">The host's counters just before the process exited.</param>
/// <param name="HostStatsAfterExit">The host's counters once every process had exited.</param>
/// <param name="AuditedSteps">How many steps the host MM auditor checked after.</param>
/// <param name="AuditFindings">The steps after which the auditor found violations; empty when consistent throughout.</param>
internal sealed record HostDemoResult(
    int Seed,
    int RandomOperations,
    int ScriptThreadId,
    int MmId,
    int ChildMmId,
    Pfn ZeroPfn,
    HostDemoLayout Layout,
    IReadOnlyList<NotifierTraceEvent> Timeline,
    IReadOnlyList<UserEventRead> UserEventReads,
    MmuNotifierChainStats ChainStats,
    UserEventChannelStats ChannelStats,
    MmStats MmStatsBeforeExit,
    HostStats HostStatsBeforeExit,
    HostStats HostStatsAfterExit,
    int AuditedSteps,
    IReadOnlyList<AuditFinding> AuditFindings)
{
    /// <summary>True when the auditor found the host consistent after every step.</summary>
    public bool IsConsistent => AuditFindings.Count == 0;

    /// <summary>Violations over all steps.</summary>
    public int ViolationCount => AuditFindings.Sum(f => f.Violations.Count);
}

using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>One replay of a race with the chain and host in one era.</summary>
/// <param name="Race">The race.</param>
/// <param name="Era">The era the chain and host followed.</param>
/// <param name="Timeline">Every host step, callback and step mark, in order, unfolded.</param>
/// <param name="Threads">The actors' names by managed thread id (the script's own thread is not among them).</param>
/// <param name="ZeroPfn">The host's zero page.</param>
/// <param name="GuestBase">Where the guest's RAM is mapped in the process (page n is at GuestBase + n × 4096).</param>
/// <param name="Checkpoint">When the auditor looked: the moment the race leaves its mark.</param>
/// <param name="CheckpointViolations">What <see cref="MmuAuditor.Check"/> found then: empty when no secondary mapping was stale.</param>
/// <param name="FinalViolations">What it found once every actor had finished.</param>
/// <param name="Releases">How many times the chain called the secondary MMU's release.</param>
/// <param name="MmuStats">The secondary MMU's counters at the end.</param>
internal sealed record HistoryRunResult(
    HistoricalRace Race,
    NotifierEra Era,
    IReadOnlyList<NotifierTraceEvent> Timeline,
    IReadOnlyDictionary<int, string> Threads,
    Pfn ZeroPfn,
    Hva GuestBase,
    string Checkpoint,
    IReadOnlyList<string> CheckpointViolations,
    IReadOnlyList<string> FinalViolations,
    int Releases,
    TdpMmuStats MmuStats)
{
    /// <summary>True when the auditor caught a stale secondary mapping at the checkpoint.</summary>
    public bool StaleMappingCaught => CheckpointViolations.Count > 0;

    /// <summary>True when the auditor found nothing, at the checkpoint or at the end, and release ran at most once.</summary>
    public bool IsClean => CheckpointViolations.Count == 0 && FinalViolations.Count == 0 && Releases <= 1;

    /// <summary>"page n" or "pages a-b" of the guest's RAM for a host range inside it; the range itself otherwise.</summary>
    public string DescribeRange(Hva start, Hva end)
    {
        var guestEnd = GuestBase + ((ulong)HistoryWorld.GuestPages * Paging.PageSize);
        if (start < GuestBase || end > guestEnd || end <= start || !start.IsPageAligned)
        {
            return HostDemoReport.FormatRange(start, end);
        }

        var first = (start - GuestBase) >> Paging.PageShift;
        var last = ((end - GuestBase - 1) >> Paging.PageShift);
        return first == last ? $"page {first}" : $"pages {first}-{last}";
    }
}

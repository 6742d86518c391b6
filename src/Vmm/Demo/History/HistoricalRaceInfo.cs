using Hypervisor.Notifier;
namespace Hypervisor.Vmm.Demo.History;

/// <summary>What <c>hv demo history</c> says about one race: its command-line name, era, fix and story.</summary>
/// <param name="Race">The race.</param>
/// <param name="Name">Its command-line name.</param>
/// <param name="Era">The chain and host mode that re-creates it.</param>
/// <param name="Title">One line: year and what went wrong.</param>
/// <param name="Fix">The change that closed it, and what today's contract does instead.</param>
internal sealed record HistoricalRaceInfo(HistoricalRace Race, string Name, NotifierEra Era, string Title, string Fix)
{
    /// <summary>Every race, in the order the demo runs them.</summary>
    public static readonly IReadOnlyList<HistoricalRaceInfo> All =
    [
        new(
            HistoricalRace.ReleaseUnlink,
            "release-unlink",
            NotifierEra.ReleaseAfterUnlink,
            "2012: freed page still mapped in secondary MMU (exit unlinked the subscriber before its release)",
            "Xiao Guangrong, 3ad3d901 (Linux 3.6): release is called while the subscriber is still listed, and only then are all unlinked; "
            + "today's chain does so, so the migration's start still reaches the MMU and zaps before the old frame is freed."),
        new(
            HistoricalRace.UnregisterRelease,
            "unregister-release",
            NotifierEra.UnlinkClaimsRelease,
            "2013: unregister racing exit (the unlink claimed the release; exit released nothing and waited for nothing)",
            "Xiao Guangrong, d34883d4e3 (Linux 3.10), re-fixing Robin Holt's 751efd8610: unregister releases while listed, inside the "
            + "read side, so exit's synchronize waits for it; today's chain also claims release once, so it is never called twice."),
        new(
            HistoricalRace.NoRangeStartEnd,
            "no-range-start",
            NotifierEra.NoRangeStartEnd,
            "2008: no range start/end (the host announced a change only after it; a fault in between installed the old frame)",
            "Andrea Arcangeli's invalidate_range_start/end (Linux 2.6.27): start comes before the PTE changes and counts an "
            + "invalidation in progress, so the fault sees it, retries after the end and maps the page's new state."),
    ];

    /// <summary>The race named <paramref name="name"/> on the command line, or null.</summary>
    public static HistoricalRaceInfo? Find(string name) => All.FirstOrDefault(info => string.Equals(info.Name, name, StringComparison.Ordinal));

    /// <summary>The information about <paramref name="race"/>.</summary>
    public static HistoricalRaceInfo Of(HistoricalRace race) => All.First(info => info.Race == race);
}

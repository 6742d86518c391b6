namespace Hypervisor.Vmm.Demo.History;

/// <summary>The notifier races <c>hv demo history</c> replays, oldest design last.</summary>
internal enum HistoricalRace
{
    /// <summary>2012: exit's release reached a subscriber only after it was unlinked; a migration in that window freed a page the secondary MMU still mapped.</summary>
    ReleaseUnlink,

    /// <summary>2013: unregister unlinked the subscriber and called release outside the read side; a racing exit released nothing, waited for nothing, and freed every page.</summary>
    UnregisterRelease,

    /// <summary>2008: no range start/end; a secondary fault between the host's PTE clear and its late invalidate installed the old frame, which was then freed.</summary>
    NoRangeStartEnd,
}

namespace Hypervisor.HostMm.Reclaim;

/// <summary>What reclaim did with one isolated frame (the labels of Linux's <c>shrink_folio_list</c>).</summary>
internal enum FolioOutcome
{
    /// <summary>Freed.</summary>
    Reclaimed,

    /// <summary>Referenced often enough, or impossible to reclaim now: back to the active list.</summary>
    Activate,

    /// <summary>Referenced once, or busy: back to the head of the inactive list.</summary>
    Keep,

    /// <summary>Handed to the asynchronous writeback with its page lock and isolation reference: its completion frees or puts it back.</summary>
    Writeback,
}

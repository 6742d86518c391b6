namespace Hypervisor.HostMm.Reclaim;

/// <summary>How <c>try_to_unmap</c> ended for one frame.</summary>
internal enum UnmapOutcome
{
    /// <summary>Every mapping it could reach was replaced (check the mapcount: a busy process may have been skipped).</summary>
    Done,

    /// <summary>A lazily freed page was written again since MADV_FREE: it is swap-backed again and stays mapped.</summary>
    Redirtied,
}

namespace Hypervisor.GuestMmu.Ept;

/// <summary>Outcome of <see cref="EptPageTable.Install"/>.</summary>
public enum InstallResult
{
    /// <summary>The entry held the expected value and now holds the new one.</summary>
    Installed,

    /// <summary>The entry no longer held the expected value (another fault, a hardware A/D update or a frozen entry): re-read and retry.</summary>
    Changed,

    /// <summary>
    /// A large leaf was to replace a page table that still holds entries (a racing fault filled it, or
    /// the range was never zapped): map at a smaller level instead, or zap the range first.
    /// </summary>
    TablePopulated,

    /// <summary>
    /// A present large leaf above <c>level</c> already maps the gfn (a racing fault installed it):
    /// <see cref="EptPageTable.Read(Gfn, out int)"/> shows it. Nothing was changed.
    /// </summary>
    CoveredByLargeLeaf,
}

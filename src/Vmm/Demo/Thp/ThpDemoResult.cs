namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>What <see cref="ThpDemo"/> saw: the two comparison runs, the split storm and the collapse pass, the guest's verdict, the host's read-back and the audits.</summary>
public sealed record ThpDemoResult
{
    /// <summary>The options the demo ran with.</summary>
    public required ThpDemoOptions Options { get; init; }

    /// <summary>The run without THP, or null when it did not complete.</summary>
    public required ThpDemoRun? Off { get; init; }

    /// <summary>The run under <c>--thp always</c>, or null when it did not complete.</summary>
    public required ThpDemoRun? On { get; init; }

    /// <summary>The third run's split storm and collapse pass, or null when the guest never reached them.</summary>
    public required ThpDemoStorm? Storm { get; init; }

    /// <summary>The third run as a whole (guest verdict, final counters), or null when it did not complete.</summary>
    public required ThpDemoRun? StormRun { get; init; }

    /// <summary>Pages the host read back after the third run whose content was not the one the guest last wrote.</summary>
    public required long HostCorruptedPages { get; init; }

    /// <summary>Pages the host read back.</summary>
    public required long HostCheckedPages { get; init; }

    /// <summary>The guest's page count as it printed it in the third run (0 when it never did).</summary>
    public required long GuestPages { get; init; }

    /// <summary>Audits run (host MM auditor and the MMU auditor, at quiescent points).</summary>
    public required long Audits { get; init; }

    /// <summary>The first violations the audits found.</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>What went wrong outside the checks, or null.</summary>
    public string? Problem { get; init; }

    /// <summary>The whole demo's wall-clock time.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>
    /// Everything held: both comparison runs and the storm run verified their pages; THP off mapped no 2 MiB sptes and
    /// THP on some; the storm split huge pages and pages_2m dropped; the collapse pass collapsed ranges and pages_2m came
    /// back above its low; the host's read-back matched; every audit was clean.
    /// </summary>
    public bool Succeeded =>
        Problem is null
        && Off is { GuestPassed: true, Pages2M: 0 } && On is { GuestPassed: true, Pages2M: > 0 } && StormRun is { GuestPassed: true }
        && Storm is { } s && s.Splits > 0 && s.Pages2MAfterStorm < s.Pages2MBefore && s.Collapsed > 0 && s.Pages2MAtEnd > s.Pages2MAfterStorm
        && GuestPages > 0 && HostCheckedPages == GuestPages && HostCorruptedPages == 0
        && AuditViolations.Count == 0 && Options.AuditEveryStep && Audits > 0;
}

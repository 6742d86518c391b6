namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>What <see cref="KsmDemo"/> saw: memory before and after merging, the copy-on-write breaks, the isolation check, the audits.</summary>
public sealed record KsmDemoResult
{
    /// <summary>The options the demo ran with.</summary>
    public required KsmDemoOptions Options { get; init; }

    /// <summary>Every guest filled its pages; nothing merged yet.</summary>
    public required KsmDemoSnapshot BeforeMerge { get; init; }

    /// <summary>The scanner settled (no new merge in a full scan) with every guest held.</summary>
    public required KsmDemoSnapshot AfterMerge { get; init; }

    /// <summary>Every guest rewrote its pages (breaking merged pages copy-on-write).</summary>
    public required KsmDemoSnapshot AfterRewrite { get; init; }

    /// <summary>Whether the scanner settled before the phase timeout.</summary>
    public required bool Settled { get; init; }

    /// <summary>Each VM, in order.</summary>
    public required IReadOnlyList<KsmDemoVm> Vms { get; init; }

    /// <summary>Audits run (host MM auditor and every VM's MMU auditor, after each ksmd batch and at each phase's end).</summary>
    public required long Audits { get; init; }

    /// <summary>The first violations the audits found.</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>What went wrong outside the checks (a VM that never reached a phase), or null.</summary>
    public string? Problem { get; init; }

    /// <summary>The whole demo's wall-clock time.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Host frames saved by merging: in use before less in use after.</summary>
    public long FramesSaved => BeforeMerge.FramesInUse - AfterMerge.FramesInUse;

    /// <summary>No VM read another's writes: every VM's pages held its own content after every rewrite.</summary>
    public bool IsolationPassed => Vms.Count > 0 && Vms.All(v => v.ForeignPages == 0 && v.RewrittenPages > 0);

    /// <summary>Everything held: merged, isolated, every guest passed, every audit clean.</summary>
    public bool Succeeded =>
        Problem is null && Settled && AfterMerge.Ksm.PagesSharing > 0 && FramesSaved > 0 && AfterRewrite.CowKsm > BeforeMerge.CowKsm
        && IsolationPassed && Vms.All(v => v.GuestPassed) && AuditViolations.Count == 0 && Options.AuditEveryStep && Audits > 0;
}

namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>One VM of the demo: how it ended, what it and the host saw of its pages.</summary>
public sealed record KsmDemoVm
{
    /// <summary>The VM's index.</summary>
    public required int Index { get; init; }

    /// <summary>The salt its rewritten pages mix in (its own, so no other VM writes the same content).</summary>
    public required int Salt { get; init; }

    /// <summary>The guest's exit code, or null when it did not exit.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's last verdict line (<c>ksm: OK</c>) or how the VM stopped.</summary>
    public required string Verdict { get; init; }

    /// <summary>Pages the guest rewrote after merging.</summary>
    public required long RewrittenPages { get; init; }

    /// <summary>Pages whose content, read by the host after every VM's rewrite, was not this VM's own.</summary>
    public required long ForeignPages { get; init; }

    /// <summary>Legacy change_pte calls on this VM's notifier chain whose spte the EPT MMU found present (and retargeted).</summary>
    public required long ChangePteHits { get; init; }

    /// <summary>Legacy change_pte calls that found no spte (already zapped by the enclosing invalidate_range_start).</summary>
    public required long ChangePteMisses { get; init; }

    /// <summary>EPT violations of the VM's whole run.</summary>
    public required long EptViolations { get; init; }

    /// <summary>Whether the guest verified its own pages after every phase and exited 0.</summary>
    public bool GuestPassed => GuestExitCode == 0 && Verdict.StartsWith("ksm: OK", StringComparison.Ordinal);
}

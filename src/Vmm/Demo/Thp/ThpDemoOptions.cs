using System.Globalization;

namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>What <see cref="ThpDemo"/> runs: the guest (the ksm guest's pages, contents and verify passes) and khugepaged's scan budget.</summary>
public sealed record ThpDemoOptions
{
    /// <summary>The most pages the guest fills (the ksm guest's own limit, 256 MiB).</summary>
    public const int MaxPages = 65536;

    /// <summary>The most khugepaged steps of the collapse pass before it gives up.</summary>
    public const int MaxCollapseSteps = 1000;

    /// <summary>Guest RAM.</summary>
    public ulong GuestBytes { get; init; } = 32UL << 20;

    /// <summary>Pages the guest fills, verifies, partly rewrites and verifies again.</summary>
    public int Pages { get; init; } = 4096;

    /// <summary>Distinct contents among the filled pages.</summary>
    public int Kinds { get; init; } = 16;

    /// <summary>The guest rewrites every this-many-th page between its two verify phases.</summary>
    public int Every { get; init; } = 8;

    /// <summary>Times the guest re-reads and checks every page in each phase (its memory-bound part).</summary>
    public int Passes { get; init; } = 2;

    /// <summary>Pages each khugepaged step scans (its <c>pages_to_scan</c>; 512 per 2 MiB range).</summary>
    public int CollapseBudget { get; init; } = 4096;

    /// <summary>Audit the host and the MMU after the split storm and every collapse step (the default); off only to time the demo.</summary>
    public bool AuditEveryStep { get; init; } = true;

    /// <summary>The longest wait for the guest to reach a phase.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Where the demo's timeline is recorded (<c>--trace FILE</c>), or null.</summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Checks every rule.</summary>
    /// <exception cref="ThpDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        var c = CultureInfo.InvariantCulture;
        if (Pages < 1 || Pages > MaxPages)
        {
            throw new ThpDemoOptionsException(nameof(Pages), string.Create(c, $"the guest fills 1 to {MaxPages} pages, got {Pages}"));
        }

        // The guest puts its pages at the first MiB boundary after its image (under 2 MiB) and needs them below RAM's end;
        // guest RAM is whole 2 MiB pages so every part of it can be a huge page.
        var needed = (4UL << 20) + ((ulong)Pages * 4096);
        if (GuestBytes < needed || GuestBytes > (1UL << 30) || GuestBytes % (2UL << 20) != 0)
        {
            throw new ThpDemoOptionsException(nameof(GuestBytes), string.Create(c, $"guest RAM must be a multiple of 2 MiB from {(needed + (2UL << 20) - 1) >> 21 << 1} MiB (the image and {Pages} pages) to 1024 MiB, got {GuestBytes} bytes"));
        }

        if (Kinds < 1 || Kinds > Pages)
        {
            throw new ThpDemoOptionsException(nameof(Kinds), string.Create(c, $"kinds must be 1 to the page count ({Pages}), got {Kinds}"));
        }

        if (Every < 2 || Every > Pages)
        {
            throw new ThpDemoOptionsException(nameof(Every), string.Create(c, $"every must be 2 to the page count ({Pages}), got {Every}"));
        }

        if (Passes < 1 || Passes > 1000)
        {
            throw new ThpDemoOptionsException(nameof(Passes), string.Create(c, $"the guest verifies its pages 1 to 1000 times per phase, got {Passes}"));
        }

        if (CollapseBudget < 512 || CollapseBudget > 1 << 20)
        {
            throw new ThpDemoOptionsException(nameof(CollapseBudget), string.Create(c, $"a khugepaged step scans 512 (one 2 MiB range) to {1 << 20} pages, got {CollapseBudget}"));
        }

        if (PhaseTimeout <= TimeSpan.Zero)
        {
            throw new ThpDemoOptionsException(nameof(PhaseTimeout), string.Create(c, $"the phase timeout must be positive, got {PhaseTimeout}"));
        }
    }
}

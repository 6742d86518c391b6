using System.Globalization;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>
/// What <see cref="MigrateDemo"/> runs: the guest (the ksm guest's pages, contents and verify passes), the number of
/// node 0 ⇄ 1 trips, and NUMA balancing's scan budget.
/// </summary>
public sealed record MigrateDemoOptions
{
    /// <summary>The fewest trips: there and back twice.</summary>
    public const int MinTrips = 4;

    /// <summary>The most trips.</summary>
    public const int MaxTrips = 1000;

    /// <summary>The most pages the guest fills (the ksm guest's own limit, 256 MiB).</summary>
    public const int MaxPages = 65536;

    /// <summary>The share of guest pages on the vCPU's node at which NUMA balancing has done its work: most of them.</summary>
    public const double BalancedShare = 0.9;

    /// <summary>Guest RAM.</summary>
    public ulong GuestBytes { get; init; } = 32UL << 20;

    /// <summary>Pages the guest fills, verifies, partly rewrites and verifies again.</summary>
    public int Pages { get; init; } = 4096;

    /// <summary>Distinct contents among the filled pages.</summary>
    public int Kinds { get; init; } = 16;

    /// <summary>The guest rewrites every this-many-th page between its two verify phases.</summary>
    public int Every { get; init; } = 8;

    /// <summary>Times the guest re-reads and checks every page in each phase (the time the host has to migrate under it).</summary>
    public int Passes { get; init; } = 4;

    /// <summary>Trips of all guest RAM between node 0 and node 1 (the first to node 1, the next back to node 0, …).</summary>
    public int Trips { get; init; } = 6;

    /// <summary>Pages of address space each NUMA balancing step scans (its <c>Step</c> budget); 0 (the default): all of guest RAM.</summary>
    public int BalanceBudget { get; init; }

    /// <summary>Audit the host and the VM's secondary MMU after every trip and every balancing step (the default); off only to time the demo.</summary>
    public bool AuditEveryStep { get; init; } = true;

    /// <summary>The longest wait for the guest to reach a phase, or for balancing to move most pages.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Where the demo's timeline is recorded (<c>--trace FILE</c>), or null.</summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Checks every rule.</summary>
    /// <exception cref="MigrateDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        var c = CultureInfo.InvariantCulture;
        if (Pages < 1 || Pages > MaxPages)
        {
            throw new MigrateDemoOptionsException(nameof(Pages), string.Create(c, $"the guest fills 1 to {MaxPages} pages, got {Pages}"));
        }

        // The guest puts its pages at the first MiB boundary after its image (under 2 MiB) and needs them below RAM's end.
        var needed = (4UL << 20) + ((ulong)Pages * 4096);
        if (GuestBytes < needed || GuestBytes > (1UL << 30) || GuestBytes % 4096 != 0)
        {
            throw new MigrateDemoOptionsException(nameof(GuestBytes), string.Create(c, $"guest RAM must be a multiple of 4 KiB from {needed >> 20} MiB (the image and {Pages} pages) to 1024 MiB, got {GuestBytes} bytes"));
        }

        if (Kinds < 1 || Kinds > Pages)
        {
            throw new MigrateDemoOptionsException(nameof(Kinds), string.Create(c, $"kinds must be 1 to the page count ({Pages}), got {Kinds}"));
        }

        if (Every < 2 || Every > Pages)
        {
            throw new MigrateDemoOptionsException(nameof(Every), string.Create(c, $"every must be 2 to the page count ({Pages}), got {Every}"));
        }

        if (Passes < 1 || Passes > 1000)
        {
            throw new MigrateDemoOptionsException(nameof(Passes), string.Create(c, $"the guest verifies its pages 1 to 1000 times per phase, got {Passes}"));
        }

        if (Trips < MinTrips || Trips > MaxTrips)
        {
            throw new MigrateDemoOptionsException(nameof(Trips), string.Create(c, $"the demo makes {MinTrips} to {MaxTrips} trips between the nodes (there and back at least twice), got {Trips}"));
        }

        if (BalanceBudget < 0 || BalanceBudget > 1 << 20)
        {
            throw new MigrateDemoOptionsException(nameof(BalanceBudget), string.Create(c, $"a NUMA balancing step scans 1 to {1 << 20} pages (0: all of guest RAM), got {BalanceBudget}"));
        }

        if (PhaseTimeout <= TimeSpan.Zero)
        {
            throw new MigrateDemoOptionsException(nameof(PhaseTimeout), string.Create(c, $"the phase timeout must be positive, got {PhaseTimeout}"));
        }
    }
}

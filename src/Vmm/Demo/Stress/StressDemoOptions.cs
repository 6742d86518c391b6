using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>What <see cref="StressDemo"/> runs: how long, from which seed, how many vCPUs, how much guest RAM and data.</summary>
public sealed record StressDemoOptions
{
    /// <summary>The most vCPUs.</summary>
    public const int MaxVcpus = 8;

    /// <summary>The least guest RAM.</summary>
    public const ulong MinGuestBytes = 16UL << 20;

    /// <summary>The most guest RAM.</summary>
    public const ulong MaxGuestBytes = 1UL << 30;

    /// <summary>RAM below the guest's data area: the image (with its stacks), the control page and the counters.</summary>
    public const ulong ReservedBytes = 8UL << 20;

    /// <summary>The longest run, in seconds (a day).</summary>
    public const int MaxDurationSeconds = 86_400;

    /// <summary>How long the host mechanisms run under the guest.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The seed the host operation schedule is drawn from (the same seed, the same schedule).</summary>
    public int Seed { get; init; }

    /// <summary>vCPUs, each writing and verifying its own region.</summary>
    public int Vcpus { get; init; } = 2;

    /// <summary>Guest RAM.</summary>
    public ulong GuestBytes { get; init; } = 64UL << 20;

    /// <summary>
    /// Each vCPU's region (a multiple of 2 MiB), or 0 for the default: 8 MiB, or less when guest RAM beyond
    /// <see cref="ReservedBytes"/> is smaller.
    /// </summary>
    public ulong RegionBytes { get; init; }

    /// <summary>The memory cgroup limit as a share of the memory the guest touches: below 1, so reclaim swaps all along.</summary>
    public double HostMemoryShare { get; init; } = 0.8;

    /// <summary>How often the auditor runs a pass.</summary>
    public TimeSpan AuditInterval { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>The longest wait for the guest to boot, or to finish its last pass once told to stop.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Scheduled mechanisms left out (to narrow a failing seed down to the mechanisms it needs); the daemons (reclaim,
    /// KSM) always run. Their rows then show no operations and do not count against the run.
    /// </summary>
    public IReadOnlySet<StressMechanismKind> Without { get; init; } = new HashSet<StressMechanismKind>();

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Where the demo's timeline is recorded (<c>--trace FILE</c>), or null.</summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Each vCPU's region in force.</summary>
    public ulong EffectiveRegionBytes => RegionBytes != 0
        ? RegionBytes
        : Math.Min(8UL << 20, ((GuestBytes - Math.Min(GuestBytes, ReservedBytes)) / (ulong)Math.Max(1, Vcpus)) & ~(StressGuestLayout.ChunkBytes - 1));

    /// <summary>Checks every rule.</summary>
    /// <exception cref="StressDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        var c = CultureInfo.InvariantCulture;
        if (Duration <= TimeSpan.Zero || Duration > TimeSpan.FromSeconds(MaxDurationSeconds))
        {
            throw new StressDemoOptionsException(nameof(Duration), string.Create(c, $"the duration must be more than 0 and at most {MaxDurationSeconds} seconds, got {Duration.TotalSeconds} s"));
        }

        if (Vcpus < 1 || Vcpus > MaxVcpus)
        {
            throw new StressDemoOptionsException(nameof(Vcpus), string.Create(c, $"the stress demo runs 1 to {MaxVcpus} vCPUs, got {Vcpus}"));
        }

        if (GuestBytes < MinGuestBytes || GuestBytes > MaxGuestBytes || GuestBytes % StressGuestLayout.ChunkBytes != 0)
        {
            throw new StressDemoOptionsException(nameof(GuestBytes), string.Create(c, $"guest RAM must be a multiple of 2 MiB from {MinGuestBytes >> 20} MiB to {MaxGuestBytes >> 20} MiB, got {GuestBytes} bytes"));
        }

        var region = EffectiveRegionBytes;
        if (region < StressGuestLayout.ChunkBytes || region % StressGuestLayout.ChunkBytes != 0 || ReservedBytes + (region * (ulong)Vcpus) > GuestBytes)
        {
            throw new StressDemoOptionsException(nameof(RegionBytes), string.Create(c, $"each of the {Vcpus} vCPUs needs a region of a multiple of 2 MiB, and {ReservedBytes >> 20} MiB plus the regions must fit in {GuestBytes >> 20} MiB of guest RAM: give more guest RAM or fewer vCPUs (region {region} bytes)"));
        }

        if (HostMemoryShare <= 0.1 || HostMemoryShare >= 1)
        {
            throw new StressDemoOptionsException(nameof(HostMemoryShare), string.Create(c, $"the host memory share must be above 0.1 and below 1 (reclaim must run), got {HostMemoryShare}"));
        }

        if (Without.Where(kind => !StressSchedule.Scheduled.Contains(kind)).Select(kind => (StressMechanismKind?)kind).FirstOrDefault() is { } daemon)
        {
            throw new StressDemoOptionsException(nameof(Without), $"--without {StressMechanismNames.Of(daemon)}: {StressMechanismNames.Of(daemon)} is a host daemon and always runs; only the scheduled mechanisms can be left out: {string.Join(", ", StressSchedule.Scheduled.Select(StressMechanismNames.Of))}");
        }

        if (AuditInterval <= TimeSpan.Zero || PhaseTimeout <= TimeSpan.Zero)
        {
            throw new StressDemoOptionsException(nameof(AuditInterval), string.Create(c, $"the audit interval and the phase timeout must be positive, got {AuditInterval} and {PhaseTimeout}"));
        }
    }
}

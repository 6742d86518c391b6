using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>What <see cref="SwapDemo"/> runs: the sizes of both phases, the swap device and the LRU policy.</summary>
public sealed record SwapDemoOptions
{
    /// <summary>The smallest ratio of guest RAM to the host limit in phase 1: the point of the demonstration.</summary>
    public const int MinOvercommit = 4;

    /// <summary>Phase 1's guest RAM.</summary>
    public ulong MemtestGuestBytes { get; init; } = 96UL << 20;

    /// <summary>Phase 1's host memory limit (the VM process's memory cgroup); guest RAM must be at least <see cref="MinOvercommit"/> times it.</summary>
    public ulong MemtestHostBytes { get; init; } = 24UL << 20;

    /// <summary>Phase 2's hot set (MiB), touched on every pass.</summary>
    public int HotMib { get; init; } = 8;

    /// <summary>Phase 2's cold set (MiB), touched once per round.</summary>
    public int ColdMib { get; init; } = 24;

    /// <summary>Phase 2's rounds (each: hot passes, then one cold pass).</summary>
    public int Rounds { get; init; } = 4;

    /// <summary>Phase 2's host memory limit: the hot set fits, the hot and cold sets together do not.</summary>
    public ulong WorkingSetHostBytes { get; init; } = 20UL << 20;

    /// <summary>The swap device of both phases.</summary>
    public SwapDeviceKind SwapDevice { get; init; } = SwapDeviceKind.File;

    /// <summary>The swap file's path (file device; null: a temporary file removed at the end).</summary>
    public string? SwapPath { get; init; }

    /// <summary>The swap file with O_DIRECT (file device only; see <see cref="SwapOptions.DirectIo"/>).</summary>
    public bool SwapDirectIo { get; init; }

    /// <summary>The LRU policy of both phases.</summary>
    public LruPolicy LruPolicy { get; init; } = LruPolicy.Classic;

    /// <summary>The seed of memtest's pattern.</summary>
    public ulong Seed { get; init; } = 7;

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Where the demo's timeline is recorded (<c>--trace FILE</c>), or null.</summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Audit the host and the secondary MMU after every reclaim batch of phase 1 (the default); off only to time the phase.</summary>
    public bool AuditEveryBatch { get; init; } = true;

    /// <summary>Checks every rule.</summary>
    /// <exception cref="SwapDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        if (MemtestHostBytes == 0 || MemtestGuestBytes < MinOvercommit * MemtestHostBytes)
        {
            throw new SwapDemoOptionsException(
                nameof(MemtestHostBytes),
                $"phase 1's guest RAM ({MemtestGuestBytes >> 20} MiB) must be no less than {MinOvercommit}x its host limit ({MemtestHostBytes >> 20} MiB)");
        }

        if (MemtestGuestBytes < (8UL << 20))
        {
            throw new SwapDemoOptionsException(nameof(MemtestGuestBytes), $"phase 1's guest RAM must be 8 MiB or more, got {MemtestGuestBytes >> 20} MiB");
        }

        if (HotMib < 1 || ColdMib < 1 || Rounds < 1)
        {
            throw new SwapDemoOptionsException(nameof(HotMib), $"phase 2's hot set, cold set and rounds must each be 1 or more, got hot {HotMib} MiB, cold {ColdMib} MiB, {Rounds} rounds");
        }

        if (WorkingSetHostBytes <= (ulong)HotMib << 20 || WorkingSetHostBytes >= (ulong)(HotMib + ColdMib) << 20)
        {
            throw new SwapDemoOptionsException(
                nameof(WorkingSetHostBytes),
                $"phase 2's host limit ({WorkingSetHostBytes >> 20} MiB) must hold the hot set ({HotMib} MiB) but not both sets ({HotMib + ColdMib} MiB)");
        }

        if (SwapDirectIo && SwapDevice != SwapDeviceKind.File)
        {
            throw new SwapDemoOptionsException(nameof(SwapDirectIo), "--swap-io direct is for a swap file, not --swap zram (a compressed in-memory device has no page cache to bypass)");
        }
    }
}

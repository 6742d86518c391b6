namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>The split storm and collapse pass of <see cref="ThpDemo"/>'s third run, with pages_2m / pages_4k at each point.</summary>
public sealed record ThpDemoStorm
{
    /// <summary>2 MiB EPT leaves present before the storm.</summary>
    public required long Pages2MBefore { get; init; }

    /// <summary>Host huge leaves mapped before the storm (AnonHugePages / 2 MiB).</summary>
    public required long HugeLeavesBefore { get; init; }

    /// <summary>The 4 KiB mprotect calls of the storm (one per huge page of guest RAM).</summary>
    public required long Mprotects { get; init; }

    /// <summary>Host huge leaves split by the storm (<c>thp_split_pmd</c>'s increase).</summary>
    public required long Splits { get; init; }

    /// <summary>sptes zapped by the storm's notifier calls.</summary>
    public required long SptesZapped { get; init; }

    /// <summary>How long the storm took, the guest running under it.</summary>
    public required TimeSpan StormElapsed { get; init; }

    /// <summary>2 MiB EPT leaves present once the guest had run on after the storm.</summary>
    public required long Pages2MAfterStorm { get; init; }

    /// <summary>4 KiB EPT leaves present then (the guest's refaults at 4 KiB).</summary>
    public required long Pages4KAfterStorm { get; init; }

    /// <summary>EPT violations from the start of the storm (the guest rewrites under it) to the collapse pass.</summary>
    public required long RefaultsAfterStorm { get; init; }

    /// <summary>khugepaged steps of the collapse pass.</summary>
    public required long CollapseSteps { get; init; }

    /// <summary>Ranges khugepaged collapsed (<c>thp_collapse_alloc</c>'s increase).</summary>
    public required long Collapsed { get; init; }

    /// <summary>Host huge leaves mapped after the collapse pass.</summary>
    public required long HugeLeavesAfterCollapse { get; init; }

    /// <summary>How long the collapse pass took.</summary>
    public required TimeSpan CollapseElapsed { get; init; }

    /// <summary>2 MiB EPT leaves present at the end, after the guest touched its pages again.</summary>
    public required long Pages2MAtEnd { get; init; }

    /// <summary>EPT violations from the collapse pass to the end.</summary>
    public required long RefaultsAfterCollapse { get; init; }
}

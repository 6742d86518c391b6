using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>One run of phase 2 of the swap demo: the working-set guest with the secondary MMU's young answers used or ignored.</summary>
public sealed record AgingPhaseRow
{
    /// <summary>True when reclaim used the secondary MMU's answers to the young ops.</summary>
    public required bool SecondaryAging { get; init; }

    /// <summary>The hot set's pages.</summary>
    public required long HotPages { get; init; }

    /// <summary>The fraction of the hot set resident (mapped by the host) right after each round's cold pass, 0 to 1.</summary>
    public required IReadOnlyList<double> HotResidentAfterColdPass { get; init; }

    /// <summary>Swap-ins after the first round (the fill and the first round warm the LRU up): the cold set's, the same in every run, plus the hot set's refaults.</summary>
    public required long SwapInsAfterFirstRound { get; init; }

    /// <summary>How the VM stopped.</summary>
    public required VmStopKind Stop { get; init; }

    /// <summary>The guest's exit code, when it exited.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's verdict line, or the VM's stop detail.</summary>
    public required string GuestVerdict { get; init; }

    /// <summary>The host's reclaim and swap counters for the run.</summary>
    public required ReclaimStats Reclaim { get; init; }

    /// <summary>Wall-clock time of the run.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The mean of <see cref="HotResidentAfterColdPass"/> (0 when no round ended).</summary>
    public double MeanHotResident => HotResidentAfterColdPass.Count == 0 ? 0 : HotResidentAfterColdPass.Average();

    /// <summary>True when the guest verified every page.</summary>
    public bool GuestPassed => Stop == VmStopKind.GuestExit && GuestExitCode == 0;
}

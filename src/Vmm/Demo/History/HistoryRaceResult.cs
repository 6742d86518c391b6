using Hypervisor.Notifier;
namespace Hypervisor.Vmm.Demo.History;

/// <summary>A race replayed twice with the same interleaving: in its era's mode, then with today's chain and host.</summary>
/// <param name="Info">Which race.</param>
/// <param name="Historical">The replay in the race's era.</param>
/// <param name="Today">The same replay under <see cref="NotifierEra.Current"/>.</param>
internal sealed record HistoryRaceResult(HistoricalRaceInfo Info, HistoryRunResult Historical, HistoryRunResult Today)
{
    /// <summary>True when the era's replay left a stale mapping the auditor caught and today's replay was clean.</summary>
    public bool Succeeded => Historical.StaleMappingCaught && Today.IsClean;
}

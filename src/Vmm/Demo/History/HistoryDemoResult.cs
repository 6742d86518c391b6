namespace Hypervisor.Vmm.Demo.History;

/// <summary>What <c>hv demo history</c> produced: each race it replayed, in order.</summary>
/// <param name="Races">The races, each replayed in its era and today.</param>
internal sealed record HistoryDemoResult(IReadOnlyList<HistoryRaceResult> Races)
{
    /// <summary>True when every race was caught in its era and clean today.</summary>
    public bool Succeeded => Races.Count > 0 && Races.All(race => race.Succeeded);
}

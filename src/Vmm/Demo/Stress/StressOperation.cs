namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// One host operation of the stress run, drawn from the seed (<see cref="StressSchedule"/>): where it acts (a 2 MiB
/// chunk of the guest's data area and pages inside it), on which node, how long it holds what it did and how long the
/// mechanism pauses after it. Each kind reads the fields it needs (see <see cref="StressSchedule.Draw"/>); the others are 0.
/// </summary>
/// <param name="Kind">The mechanism.</param>
/// <param name="Number">Its place in the mechanism's sequence, from 1.</param>
/// <param name="Chunk">The 2 MiB chunk of the data area.</param>
/// <param name="Page">The first page inside the chunk.</param>
/// <param name="Pages">Pages from <paramref name="Page"/> (a range), or a scan budget in pages.</param>
/// <param name="Node">The target NUMA node.</param>
/// <param name="HoldMilliseconds">How long the operation keeps its effect (a fork's child alive, a read-only window).</param>
/// <param name="PauseMilliseconds">The mechanism's pause after the operation.</param>
public readonly record struct StressOperation(
    StressMechanismKind Kind,
    long Number,
    int Chunk,
    int Page,
    int Pages,
    int Node,
    int HoldMilliseconds,
    int PauseMilliseconds);

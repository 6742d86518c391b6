using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// A fixture run once per kernel path (<see cref="VectorWidths.All"/>): its tests build their tables with
/// <see cref="NewTable"/>, which fixes <see cref="Width"/> on each table, so the fixture instances share no
/// state and run in parallel.
/// </summary>
[TestFixtureSource(typeof(VectorWidths), nameof(VectorWidths.All))]
public abstract class VectorPathFixture(EptVectorWidth width)
{
    /// <summary>The kernel path this fixture instance runs on.</summary>
    protected EptVectorWidth Width => width;

    /// <summary>A table on this fixture's path.</summary>
    protected EptPageTable NewTable(EptArena? arena = null, bool accessDirtyEnabled = true, HardwareAdPolicy policy = HardwareAdPolicy.DirtyUnderMmuLock) =>
        new(arena, accessDirtyEnabled, policy, width);
}

using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// A fixture run once per kernel path (<see cref="VectorWidths.All"/>): every test in it runs with
/// <see cref="EptVectorPath"/> forced to <see cref="Width"/>, restored afterwards.
/// </summary>
[TestFixtureSource(typeof(VectorWidths), nameof(VectorWidths.All))]
public abstract class VectorPathFixture(EptVectorWidth width)
{
    private EptVectorPathScope _path;

    /// <summary>The kernel path this fixture instance runs on.</summary>
    protected EptVectorWidth Width => width;

    [SetUp]
    public void ForcePath() => _path = EptVectorPath.Force(width);

    [TearDown]
    public void RestorePath() => _path.Dispose();
}

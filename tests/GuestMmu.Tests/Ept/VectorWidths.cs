using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>Every kernel path, for <c>TestCaseSource</c>: each bulk test runs once per path.</summary>
internal static class VectorWidths
{
    public static IEnumerable<EptVectorWidth> All => Enum.GetValues<EptVectorWidth>();
}

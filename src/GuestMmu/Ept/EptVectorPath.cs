using System.Runtime.Intrinsics;

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The bulk-kernel path, chosen once at start-up from what the CPU accelerates: the widest of
/// <c>Vector512</c>, <c>Vector256</c>, <c>Vector128</c>, else scalar. Tests and benchmarks force a path
/// with <see cref="Force"/>; every path gives the same results.
/// </summary>
public static class EptVectorPath
{
    /// <summary>The widest path this CPU accelerates.</summary>
    public static EptVectorWidth Detected { get; } =
        Vector512.IsHardwareAccelerated ? EptVectorWidth.Vector512
        : Vector256.IsHardwareAccelerated ? EptVectorWidth.Vector256
        : Vector128.IsHardwareAccelerated ? EptVectorWidth.Vector128
        : EptVectorWidth.Scalar;

    /// <summary>The path the kernels use now: <see cref="Detected"/> unless a test forced another.</summary>
    public static EptVectorWidth Current { get; internal set; } = Detected;

    /// <summary>
    /// Uses <paramref name="width"/> until the returned scope is disposed (tests and benchmarks only; not
    /// thread-safe against bulk operations running at the same time). Unaccelerated widths still work, slowly.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="width"/> is not a defined path.</exception>
    internal static EptVectorPathScope Force(EptVectorWidth width)
    {
        if (!Enum.IsDefined(width))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, $"vector path {width} does not exist: use Scalar, Vector128, Vector256 or Vector512");
        }

        var previous = Current;
        Current = width;
        return new EptVectorPathScope(previous);
    }
}

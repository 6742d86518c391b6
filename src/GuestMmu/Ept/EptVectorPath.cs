using System.Runtime.Intrinsics;

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// What the CPU accelerates for the bulk spte kernels. Each <see cref="EptPageTable"/> chooses its own width
/// at construction (<see cref="EptPageTable.VectorWidth"/>) and defaults to <see cref="Detected"/>; there is
/// no process-wide setting, so tables on different paths run side by side (the tests run every path in
/// parallel). Every path gives the same results.
/// </summary>
public static class EptVectorPath
{
    /// <summary>The widest path this CPU accelerates: <c>Vector512</c>, <c>Vector256</c>, <c>Vector128</c>, else scalar.</summary>
    public static EptVectorWidth Detected { get; } =
        Vector512.IsHardwareAccelerated ? EptVectorWidth.Vector512
        : Vector256.IsHardwareAccelerated ? EptVectorWidth.Vector256
        : Vector128.IsHardwareAccelerated ? EptVectorWidth.Vector128
        : EptVectorWidth.Scalar;
}

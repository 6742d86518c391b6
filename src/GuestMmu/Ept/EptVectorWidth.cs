namespace Hypervisor.GuestMmu.Ept;

/// <summary>Which instructions the bulk spte kernels (zap, age, count) use.</summary>
public enum EptVectorWidth
{
    /// <summary>One entry at a time (any CPU; the reference the vector paths are tested against).</summary>
    Scalar,

    /// <summary>Two entries per step (<c>Vector128</c>: SSE2 or Arm64 AdvSimd).</summary>
    Vector128,

    /// <summary>Four entries per step (<c>Vector256</c>: AVX2).</summary>
    Vector256,

    /// <summary>Eight entries per step (<c>Vector512</c>: AVX-512F).</summary>
    Vector512,
}

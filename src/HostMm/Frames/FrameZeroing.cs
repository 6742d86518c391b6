using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// Zeroes whole frames. The fast paths use non-temporal stores: a frame being handed out for demand-zero
/// is not read first, so skipping the read-for-ownership halves the memory traffic. The store fence that
/// makes the zeroes visible before the frame is mapped is the expensive part of a 4 KiB clear (1 GiB as
/// 4 KiB clears each fenced: ~45 ms on the development machine; as 2 MiB runs with one fence each: ~15 ms,
/// the speed of one 1 GiB memset; 2 MiB memsets, which use cached stores: ~35 ms), so a run of frames is
/// cleared by <see cref="ClearRun"/> with one fence. The path is chosen once at start-up; the scalar path
/// is the portable fallback and every path is tested.
/// </summary>
public static class FrameZeroing
{
    /// <summary>Which instructions <see cref="Clear"/> uses.</summary>
    public enum Path
    {
        /// <summary><c>Span.Clear</c> (cached stores, any CPU).</summary>
        Scalar,

        /// <summary>32-byte non-temporal stores (AVX).</summary>
        NonTemporal256,

        /// <summary>64-byte non-temporal stores (AVX-512F).</summary>
        NonTemporal512,
    }

    /// <summary>The path chosen at start-up for this CPU.</summary>
    public static Path Detected { get; } =
        Avx512F.IsSupported ? Path.NonTemporal512 : Avx.IsSupported ? Path.NonTemporal256 : Path.Scalar;

    /// <summary>The path in use (tests may force one).</summary>
    public static Path Current { get; internal set; } = Detected;

    /// <summary>Zeroes one 4 KiB frame at <paramref name="frame"/>, which must be 64-byte aligned.</summary>
    public static unsafe void Clear(byte* frame) // unsafe: stores straight into the native arena.
    {
        switch (Current)
        {
            case Path.NonTemporal512:
                var zero512 = Vector512<byte>.Zero;
                for (var offset = 0; offset < (int)Paging.PageSize; offset += 64)
                {
                    Avx512F.StoreAlignedNonTemporal(frame + offset, zero512);
                }

                // Non-temporal stores are weakly ordered: fence so the zeroes are visible before the frame is mapped.
                Sse.StoreFence();
                break;
            case Path.NonTemporal256:
                var zero256 = Vector256<byte>.Zero;
                for (var offset = 0; offset < (int)Paging.PageSize; offset += 32)
                {
                    Avx.StoreAlignedNonTemporal(frame + offset, zero256);
                }

                Sse.StoreFence();
                break;
            default:
                new Span<byte>(frame, (int)Paging.PageSize).Clear();
                break;
        }
    }

    /// <summary>
    /// Zeroes <paramref name="frames"/> contiguous 4 KiB frames from <paramref name="first"/> (64-byte aligned) with
    /// one store fence at the end: the zeroes are visible before the caller maps any of them.
    /// </summary>
    public static unsafe void ClearRun(byte* first, int frames) // unsafe: stores straight into the native arena.
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frames);
        var end = first + ((nint)frames << Paging.PageShift);
        switch (Current)
        {
            case Path.NonTemporal512:
                var zero512 = Vector512<byte>.Zero;
                for (var p = first; p < end; p += 256)
                {
                    Avx512F.StoreAlignedNonTemporal(p, zero512);
                    Avx512F.StoreAlignedNonTemporal(p + 64, zero512);
                    Avx512F.StoreAlignedNonTemporal(p + 128, zero512);
                    Avx512F.StoreAlignedNonTemporal(p + 192, zero512);
                }

                Sse.StoreFence();
                break;
            case Path.NonTemporal256:
                var zero256 = Vector256<byte>.Zero;
                for (var p = first; p < end; p += 128)
                {
                    Avx.StoreAlignedNonTemporal(p, zero256);
                    Avx.StoreAlignedNonTemporal(p + 32, zero256);
                    Avx.StoreAlignedNonTemporal(p + 64, zero256);
                    Avx.StoreAlignedNonTemporal(p + 96, zero256);
                }

                Sse.StoreFence();
                break;
            default:
                System.Runtime.InteropServices.NativeMemory.Clear(first, (nuint)(end - first));
                break;
        }
    }
}

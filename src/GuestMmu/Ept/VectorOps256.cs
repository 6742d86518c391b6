using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.GuestMmu.Ept;

/// <summary><see cref="IVectorOps{TVec}"/> over <c>Vector256&lt;ulong&gt;</c> (4 entries per step).</summary>
internal readonly unsafe struct VectorOps256 : IVectorOps<Vector256<ulong>>
{
    /// <inheritdoc />
    public static int Lanes => 4;

    /// <inheritdoc />
    public static Vector256<ulong> Zero => Vector256<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Broadcast(ulong value) => Vector256.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Load(ulong* source) => Vector256.Load(source);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<ulong> value, ulong* destination) => Vector256.Store(value, destination);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> And(Vector256<ulong> left, Vector256<ulong> right) => left & right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> AndNot(Vector256<ulong> left, Vector256<ulong> right) => Vector256.AndNot(left, right);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Or(Vector256<ulong> left, Vector256<ulong> right) => left | right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Xor(Vector256<ulong> left, Vector256<ulong> right) => left ^ right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> ShiftLeft(Vector256<ulong> value, int count) => Vector256.ShiftLeft(value, count);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> ShiftRight(Vector256<ulong> value, int count) => Vector256.ShiftRightLogical(value, count);

    /// <inheritdoc />
    /// <remarks>A 64-bit arithmetic shift exists with AVX-512VL only; otherwise compare the isolated bit with itself.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> BitLanes(Vector256<ulong> value, int bit)
    {
        if (Avx512F.VL.IsSupported)
        {
            return Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(value, 63 - bit).AsInt64(), 63).AsUInt64();
        }

        var mask = Vector256.Create(1UL << bit);
        return Vector256.Equals(value & mask, mask);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> EqualsZero(Vector256<ulong> value) => Vector256.Equals(value, Vector256<ulong>.Zero);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsZero(Vector256<ulong> value) => value == Vector256<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Subtract(Vector256<ulong> left, Vector256<ulong> right) => left - right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Add(Vector256<ulong> left, Vector256<ulong> right) => left + right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ulong> Select(Vector256<ulong> mask, Vector256<ulong> whenSet, Vector256<ulong> whenClear) =>
        Vector256.ConditionalSelect(mask, whenSet, whenClear);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint TopBits(Vector256<ulong> value) => (uint)Vector256.ExtractMostSignificantBits(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sum(Vector256<ulong> value) => Vector256.Sum(value);
}

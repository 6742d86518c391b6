using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.GuestMmu.Ept;

/// <summary><see cref="IVectorOps{TVec}"/> over <c>Vector128&lt;ulong&gt;</c> (2 entries per step).</summary>
internal readonly unsafe struct VectorOps128 : IVectorOps<Vector128<ulong>>
{
    /// <inheritdoc />
    public static int Lanes => 2;

    /// <inheritdoc />
    public static Vector128<ulong> Zero => Vector128<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Broadcast(ulong value) => Vector128.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Load(ulong* source) => Vector128.Load(source);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<ulong> value, ulong* destination) => Vector128.Store(value, destination);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> And(Vector128<ulong> left, Vector128<ulong> right) => left & right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> AndNot(Vector128<ulong> left, Vector128<ulong> right) => Vector128.AndNot(left, right);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Or(Vector128<ulong> left, Vector128<ulong> right) => left | right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Xor(Vector128<ulong> left, Vector128<ulong> right) => left ^ right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> ShiftLeft(Vector128<ulong> value, int count) => Vector128.ShiftLeft(value, count);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> ShiftRight(Vector128<ulong> value, int count) => Vector128.ShiftRightLogical(value, count);

    /// <inheritdoc />
    /// <remarks>A 64-bit arithmetic shift exists with AVX-512VL only; otherwise compare the isolated bit with itself.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> BitLanes(Vector128<ulong> value, int bit)
    {
        if (Avx512F.VL.IsSupported)
        {
            return Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(value, 63 - bit).AsInt64(), 63).AsUInt64();
        }

        var mask = Vector128.Create(1UL << bit);
        return Vector128.Equals(value & mask, mask);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> EqualsZero(Vector128<ulong> value) => Vector128.Equals(value, Vector128<ulong>.Zero);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsZero(Vector128<ulong> value) => value == Vector128<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Subtract(Vector128<ulong> left, Vector128<ulong> right) => left - right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Add(Vector128<ulong> left, Vector128<ulong> right) => left + right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Select(Vector128<ulong> mask, Vector128<ulong> whenSet, Vector128<ulong> whenClear) =>
        Vector128.ConditionalSelect(mask, whenSet, whenClear);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint TopBits(Vector128<ulong> value) => (uint)Vector128.ExtractMostSignificantBits(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sum(Vector128<ulong> value) => Vector128.Sum(value);
}

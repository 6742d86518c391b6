using System.Runtime.Intrinsics;

namespace Hypervisor.GuestMmu.Ept;

/// <summary><see cref="IVectorOps{TVec}"/> over <c>Vector512&lt;ulong&gt;</c> (8 entries per step).</summary>
internal readonly unsafe struct VectorOps512 : IVectorOps<Vector512<ulong>>
{
    /// <inheritdoc />
    public static int Lanes => 8;

    /// <inheritdoc />
    public static Vector512<ulong> Zero => Vector512<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Broadcast(ulong value) => Vector512.Create(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Load(ulong* source) => Vector512.Load(source);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<ulong> value, ulong* destination) => Vector512.Store(value, destination);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> And(Vector512<ulong> left, Vector512<ulong> right) => left & right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> AndNot(Vector512<ulong> left, Vector512<ulong> right) => Vector512.AndNot(left, right);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Or(Vector512<ulong> left, Vector512<ulong> right) => left | right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Xor(Vector512<ulong> left, Vector512<ulong> right) => left ^ right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> ShiftLeft(Vector512<ulong> value, int count) => Vector512.ShiftLeft(value, count);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> ShiftRight(Vector512<ulong> value, int count) => Vector512.ShiftRightLogical(value, count);

    /// <inheritdoc />
    /// <remarks>Shift the bit to the top and smear it right (two AVX-512 shifts, no mask-register round trip).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> BitLanes(Vector512<ulong> value, int bit) =>
        Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(value, 63 - bit).AsInt64(), 63).AsUInt64();

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> EqualsZero(Vector512<ulong> value) => Vector512.Equals(value, Vector512<ulong>.Zero);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsZero(Vector512<ulong> value) => value == Vector512<ulong>.Zero;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Subtract(Vector512<ulong> left, Vector512<ulong> right) => left - right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Add(Vector512<ulong> left, Vector512<ulong> right) => left + right;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Select(Vector512<ulong> mask, Vector512<ulong> whenSet, Vector512<ulong> whenClear) =>
        Vector512.ConditionalSelect(mask, whenSet, whenClear);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint TopBits(Vector512<ulong> value) => (uint)Vector512.ExtractMostSignificantBits(value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sum(Vector512<ulong> value) => Vector512.Sum(value);
}

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The vector operations the bulk spte kernels need, abstracted over the width so one kernel serves
/// <c>Vector128</c>, <c>Vector256</c> and <c>Vector512</c>. Implemented by empty structs; the JIT
/// specialises each kernel per struct and inlines every call, so the abstraction costs nothing.
/// </summary>
/// <typeparam name="TVec">The vector of <see cref="ulong"/> lanes.</typeparam>
internal unsafe interface IVectorOps<TVec>
    where TVec : struct
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Lanes { get; }

    /// <summary>The all-zero vector.</summary>
    static abstract TVec Zero { get; }

    /// <summary>Every lane <paramref name="value"/>.</summary>
    static abstract TVec Broadcast(ulong value);

    /// <summary>Loads <see cref="Lanes"/> entries (unaligned allowed).</summary>
    static abstract TVec Load(ulong* source);

    /// <summary>Stores <see cref="Lanes"/> entries (unaligned allowed).</summary>
    static abstract void Store(TVec value, ulong* destination);

    /// <summary>Lane-wise AND.</summary>
    static abstract TVec And(TVec left, TVec right);

    /// <summary>Lane-wise <c>left &amp; ~right</c>.</summary>
    static abstract TVec AndNot(TVec left, TVec right);

    /// <summary>Lane-wise OR.</summary>
    static abstract TVec Or(TVec left, TVec right);

    /// <summary>Lane-wise XOR.</summary>
    static abstract TVec Xor(TVec left, TVec right);

    /// <summary>Lane-wise logical shift left.</summary>
    static abstract TVec ShiftLeft(TVec value, int count);

    /// <summary>Lane-wise logical shift right.</summary>
    static abstract TVec ShiftRight(TVec value, int count);

    /// <summary>All-ones lanes where bit <paramref name="bit"/> of <paramref name="value"/> is set, zero lanes elsewhere.</summary>
    static abstract TVec BitLanes(TVec value, int bit);

    /// <summary>All-ones lanes where <paramref name="value"/> is zero, zero lanes elsewhere.</summary>
    static abstract TVec EqualsZero(TVec value);

    /// <summary>True when every lane is zero.</summary>
    static abstract bool IsZero(TVec value);

    /// <summary>Lane-wise subtraction (wrapping).</summary>
    static abstract TVec Subtract(TVec left, TVec right);

    /// <summary>Lane-wise addition (wrapping).</summary>
    static abstract TVec Add(TVec left, TVec right);

    /// <summary>Picks <paramref name="whenSet"/> where <paramref name="mask"/> bits are set, else <paramref name="whenClear"/>.</summary>
    static abstract TVec Select(TVec mask, TVec whenSet, TVec whenClear);

    /// <summary>Bit i = the top bit of lane i.</summary>
    static abstract uint TopBits(TVec value);

    /// <summary>The sum of all lanes.</summary>
    static abstract ulong Sum(TVec value);
}

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A swap slot was used against the <c>swap_map</c> rules: freeing a free slot, a map count overflowing, clearing a
/// swap-cache flag that is not set, writing or reading a slot the caller does not own through the swap cache,
/// reading a slot that holds no data. A broken invariant (a bug in the caller), not bad input: it does not carry
/// <see cref="IInputError"/>.
/// </summary>
public sealed class SwapSlotStateException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="slot"/>, whose <c>swap_map</c> word was <paramref name="word"/>.</summary>
    public SwapSlotStateException(ulong slot, ushort word, string message)
        : base(message)
    {
        Slot = slot;
        Word = word;
    }

    /// <summary>The slot whose state broke the rule.</summary>
    public ulong Slot { get; }

    /// <summary>The slot's <c>swap_map</c> word when the rule was broken (see <see cref="SwapSlotUsage"/>).</summary>
    public ushort Word { get; }
}

namespace Hypervisor.Notifier;

/// <summary>
/// An address range broke a rule: empty, reversed, unaligned, out of the address space, or overlapping a range
/// it must not overlap. Bad input: <see cref="Rule"/> says which rule, the message names the value.
/// </summary>
public sealed class InvalidRangeException : ArgumentException, IInputError
{
    /// <summary>Creates the exception for <paramref name="rule"/> with a message that names the value and the rule.</summary>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The argument that carried the bad value.</param>
    public InvalidRangeException(NotifierRule rule, string message, string? paramName = null)
        : base(message, paramName) => Rule = rule;

    /// <summary>
    /// Creates the exception without naming the rule (<see cref="NotifierRule.InvalidRange"/>); the message
    /// must say which rule was broken. Prefer the constructor that takes the rule.
    /// </summary>
    public InvalidRangeException(string message, string? paramName = null)
        : this(NotifierRule.InvalidRange, message, paramName)
    {
    }

    /// <summary>The rule that was broken.</summary>
    public NotifierRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;

    /// <summary>Throws when <c>[start, end)</c> is not a non-empty, page-aligned range inside the address space.</summary>
    /// <param name="start">Inclusive start.</param>
    /// <param name="end">Exclusive end.</param>
    /// <param name="paramName">The argument being checked, for the message.</param>
    public static void ThrowIfInvalidPageRange(Hva start, Hva end, string paramName = "range")
    {
        if (end <= start)
        {
            throw new InvalidRangeException(
                NotifierRule.EmptyOrReversedRange, $"range [{start}, {end}) is empty or reversed: end must be above start", paramName);
        }

        if (!start.IsPageAligned || !end.IsPageAligned)
        {
            throw new InvalidRangeException(
                NotifierRule.UnalignedRange,
                $"range [{start}, {end}) is not page-aligned: start and end must be multiples of {Paging.PageSize}",
                paramName);
        }

        if (end > Hva.AddressSpaceEnd)
        {
            throw new InvalidRangeException(
                NotifierRule.OutsideAddressSpace, $"range [{start}, {end}) ends beyond the address space end {Hva.AddressSpaceEnd}", paramName);
        }
    }
}

namespace Hypervisor.Notifier;

/// <summary>An address range broke a rule: empty, reversed, unaligned or out of the address space.</summary>
public sealed class InvalidRangeException : ArgumentException
{
    /// <summary>Creates the exception with a message that names the value and the rule.</summary>
    public InvalidRangeException(string message, string? paramName = null)
        : base(message, paramName)
    {
    }

    /// <summary>Throws when <c>[start, end)</c> is not a non-empty, page-aligned range inside the address space.</summary>
    /// <param name="start">Inclusive start.</param>
    /// <param name="end">Exclusive end.</param>
    /// <param name="paramName">The argument being checked, for the message.</param>
    public static void ThrowIfInvalidPageRange(Hva start, Hva end, string paramName = "range")
    {
        if (end <= start)
        {
            throw new InvalidRangeException(
                $"range [{start}, {end}) is empty or reversed: end must be above start", paramName);
        }

        if (!start.IsPageAligned || !end.IsPageAligned)
        {
            throw new InvalidRangeException(
                $"range [{start}, {end}) is not page-aligned: start and end must be multiples of {Paging.PageSize}",
                paramName);
        }

        if (end > Hva.AddressSpaceEnd)
        {
            throw new InvalidRangeException(
                $"range [{start}, {end}) ends beyond the address space end {Hva.AddressSpaceEnd}", paramName);
        }
    }
}

namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// A <see cref="VmaFlags"/> value broke a rule: it has undefined bits, or it sets both
/// <see cref="VmaFlags.HugePage"/> and <see cref="VmaFlags.NoHugePage"/>. Bad input: <see cref="Rule"/> says which rule.
/// </summary>
public sealed class InvalidVmaFlagsException : ArgumentException, IInputError
{
    /// <summary>Creates the exception for <paramref name="flags"/> with a message that names it and the rule.</summary>
    /// <param name="rule"><see cref="HostMmRule.UndefinedVmaFlags"/> or <see cref="HostMmRule.ConflictingHugePageFlags"/>.</param>
    /// <param name="flags">The rejected value.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The argument that carried the value.</param>
    public InvalidVmaFlagsException(HostMmRule rule, VmaFlags flags, string message, string? paramName = null)
        : base(message, paramName)
    {
        Rule = rule;
        Flags = flags;
    }

    /// <summary>The rejected value.</summary>
    public VmaFlags Flags { get; }

    /// <summary>The rule that was broken.</summary>
    public HostMmRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;

    /// <summary>Throws when <paramref name="flags"/> has undefined bits or both huge-page advice bits.</summary>
    /// <param name="flags">The value to check.</param>
    /// <param name="paramName">The argument being checked, for the message.</param>
    public static void ThrowIfInvalid(VmaFlags flags, string paramName)
    {
        const VmaFlags defined = VmaFlags.Mergeable | VmaFlags.HugePage | VmaFlags.NoHugePage;
        var undefined = flags & ~defined;
        if (undefined != 0)
        {
            throw new InvalidVmaFlagsException(
                HostMmRule.UndefinedVmaFlags,
                flags,
                $"VMA flags 0x{(int)flags:x} have undefined bits 0x{(int)undefined:x}: only Mergeable (1), HugePage (2) and NoHugePage (4) are defined",
                paramName);
        }

        if ((flags & (VmaFlags.HugePage | VmaFlags.NoHugePage)) == (VmaFlags.HugePage | VmaFlags.NoHugePage))
        {
            throw new InvalidVmaFlagsException(
                HostMmRule.ConflictingHugePageFlags,
                flags,
                $"VMA flags {flags} set both HugePage and NoHugePage: the two huge-page advices exclude each other",
                paramName);
        }
    }
}

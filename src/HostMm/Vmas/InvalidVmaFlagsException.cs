namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// A <see cref="VmaFlags"/> value broke a rule: it has undefined bits, or it sets both
/// <see cref="VmaFlags.HugePage"/> and <see cref="VmaFlags.NoHugePage"/>.
/// </summary>
public sealed class InvalidVmaFlagsException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="flags"/> with a message that names it and the rule.</summary>
    public InvalidVmaFlagsException(VmaFlags flags, string message, string? paramName = null)
        : base(message, paramName) => Flags = flags;

    /// <summary>The rejected value.</summary>
    public VmaFlags Flags { get; }

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
                flags,
                $"VMA flags 0x{(int)flags:x} have undefined bits 0x{(int)undefined:x}: only Mergeable (1), HugePage (2) and NoHugePage (4) are defined",
                paramName);
        }

        if ((flags & (VmaFlags.HugePage | VmaFlags.NoHugePage)) == (VmaFlags.HugePage | VmaFlags.NoHugePage))
        {
            throw new InvalidVmaFlagsException(
                flags,
                $"VMA flags {flags} set both HugePage and NoHugePage: the two huge-page advices exclude each other",
                paramName);
        }
    }
}

namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// A mapping was placed (added, inserted or grown) over addresses an existing VMA already covers. VMAs of one
/// mm never overlap; unmap the old range first. Bad input (<see cref="HostMmRule.OverlappingMapping"/>).
/// </summary>
public sealed class OverlappingMappingException : ArgumentException, IInputError
{
    /// <summary>Creates the exception for the requested range and the VMA range it collides with.</summary>
    /// <param name="start">Inclusive start of the requested range.</param>
    /// <param name="end">Exclusive end of the requested range.</param>
    /// <param name="existingStart">Inclusive start of the VMA already there.</param>
    /// <param name="existingEnd">Exclusive end of the VMA already there.</param>
    /// <param name="paramName">The argument being checked, for the message.</param>
    public OverlappingMappingException(Hva start, Hva end, Hva existingStart, Hva existingEnd, string? paramName = null)
        : base(
            $"mapping [{start}, {end}) overlaps the existing mapping [{existingStart}, {existingEnd}): VMAs of one mm must not overlap, unmap the old range first",
            paramName)
    {
        Start = start;
        End = end;
        ExistingStart = existingStart;
        ExistingEnd = existingEnd;
    }

    /// <summary>Inclusive start of the requested range.</summary>
    public Hva Start { get; }

    /// <summary>Exclusive end of the requested range.</summary>
    public Hva End { get; }

    /// <summary>Inclusive start of the VMA already there (the lowest one that collides).</summary>
    public Hva ExistingStart { get; }

    /// <summary>Exclusive end of the VMA already there.</summary>
    public Hva ExistingEnd { get; }

    /// <summary>The rule that was broken: always <see cref="HostMmRule.OverlappingMapping"/>.</summary>
    public HostMmRule Rule => HostMmRule.OverlappingMapping;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}

namespace Hypervisor.Notifier;

/// <summary>
/// The rule a caller's value broke in the notifier layer, or in a layer above that reports a bad host
/// range with <see cref="InvalidRangeException"/>; carried through <see cref="IInputError"/>.
/// </summary>
public enum NotifierRule
{
    /// <summary>
    /// A range broke one of the range rules and the thrower did not name which (the message does). Only for
    /// callers that construct <see cref="InvalidRangeException"/> without a rule.
    /// </summary>
    InvalidRange,

    /// <summary>A range (or a length or page count) is empty or reversed: its end must be above its start.</summary>
    EmptyOrReversedRange,

    /// <summary>A range's start, end or length is not a multiple of the page size.</summary>
    UnalignedRange,

    /// <summary>An address or range reaches beyond the address space it must lie in (the 47-bit user space, or <see cref="Hva.AddressSpaceEnd"/>).</summary>
    OutsideAddressSpace,

    /// <summary>Two ranges that must be disjoint (the source and destination of a move) overlap.</summary>
    OverlappingRanges,

    /// <summary>An address that must lie strictly inside a range (a VMA split point) does not.</summary>
    AddressOutsideRange,

    /// <summary>A user-event region was registered with a cookie the channel already holds: cookies are unique per channel.</summary>
    DuplicateCookie,

    /// <summary>A cookie names no region registered on the user-event channel.</summary>
    UnknownCookie,
}

namespace Hypervisor.Notifier;

/// <summary>
/// Marks an exception that reports bad input — a value from a caller, a file or the command line that breaks
/// a documented rule — as opposed to a bug. Every layer's input exceptions carry it, with the rule that was
/// broken; the message names the value and the rule. The command line prints such an exception as one
/// <c>hv: error:</c> line; any other exception that escapes is an internal error.
/// </summary>
/// <remarks>
/// Defined in the lowest layer so that every layer above can mark its own exceptions without referencing the
/// layers beside it. An exception for a broken invariant (a state the code should never reach) must not carry it.
/// </remarks>
public interface IInputError
{
    /// <summary>The rule that was broken: a value of the throwing layer's rule enum.</summary>
    Enum Rule { get; }
}

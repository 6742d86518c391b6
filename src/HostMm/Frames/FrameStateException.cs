namespace Hypervisor.HostMm.Frames;

/// <summary>
/// A frame's reference count, map count or flags were used against the rules: a double free, a put
/// on a zero reference count, freeing a mapped frame, a map count going negative (Linux's "Bad page
/// state").
/// </summary>
/// <remarks>A broken frame invariant (a bug), not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class FrameStateException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="pfn"/> with a message that names it and the rule.</summary>
    public FrameStateException(Pfn pfn, string message)
        : base(message) => Pfn = pfn;

    /// <summary>The frame whose state broke the rule.</summary>
    public Pfn Pfn { get; }
}

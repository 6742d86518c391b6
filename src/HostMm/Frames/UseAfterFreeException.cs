namespace Hypervisor.HostMm.Frames;

/// <summary>
/// A free frame was used: written to while on the free list (found by the poison check on
/// allocation), or about to be mapped or used by someone (<see cref="HostMemory.AssertNotFree"/>).
/// </summary>
/// <remarks>A broken frame invariant (a bug), not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class UseAfterFreeException : InvalidOperationException
{
    /// <summary>Creates the exception with a message that names the frame, the user and the rule.</summary>
    public UseAfterFreeException(Pfn pfn, string user, int? corruptOffset, string message)
        : base(message)
    {
        Pfn = pfn;
        User = user;
        CorruptOffset = corruptOffset;
    }

    /// <summary>The free frame that was used.</summary>
    public Pfn Pfn { get; }

    /// <summary>Who used it (the caller of <see cref="HostMemory.AssertNotFree"/>, or the allocator).</summary>
    public string User { get; }

    /// <summary>The first byte offset inside the frame whose poison was overwritten, when that is how it was found.</summary>
    public int? CorruptOffset { get; }
}

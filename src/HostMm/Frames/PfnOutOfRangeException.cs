namespace Hypervisor.HostMm.Frames;

/// <summary>A frame number outside host RAM, <c>[0, TotalFrames)</c>.</summary>
/// <remarks>Frame numbers come from the host's own allocator and page tables, so one outside RAM is a bug, not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class PfnOutOfRangeException : ArgumentOutOfRangeException
{
    /// <summary>Creates the exception for <paramref name="pfn"/> and a RAM of <paramref name="totalFrames"/> frames.</summary>
    public PfnOutOfRangeException(Pfn pfn, long totalFrames, string? paramName = "pfn")
        : base(
            paramName,
            $"{pfn} is outside host RAM [{new Pfn(0)}, {new Pfn((ulong)totalFrames)}): a pfn must be below the frame count {totalFrames}")
    {
        Pfn = pfn;
        TotalFrames = totalFrames;
    }

    /// <summary>The offending frame number.</summary>
    public Pfn Pfn { get; }

    /// <summary>The number of frames of host RAM.</summary>
    public long TotalFrames { get; }
}

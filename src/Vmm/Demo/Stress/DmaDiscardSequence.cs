namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The seqcount that announces MADV_DONTNEED of the DMA buffers' chunk: the DONTNEED mechanism moves it to an odd value
/// before the madvise and to the next even value after it. A copy whose verifier read an odd value before it wrote the
/// source, or a different value after it read the destination back, may find pages dropped (all zeros); any other copy
/// must find every byte it expects.
/// </summary>
internal sealed class DmaDiscardSequence
{
    private long _value;

    /// <summary>The counter now.</summary>
    public long Read() => Interlocked.Read(ref _value);

    /// <summary>Moves the counter on by one (before and after a drop).</summary>
    public void Bump() => Interlocked.Increment(ref _value);

    /// <summary>Whether a drop may have struck between reading <paramref name="before"/> and now.</summary>
    public bool MayHaveDropped(long before) => (before & 1) != 0 || Read() != before;
}

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A run of pages scattered in native memory (frames of the host arena), one address each: device calls are gathered
/// (<see cref="SwapGather"/>: vectored on a device that can, else through a bounce buffer).
/// </summary>
/// <param name="pages">The page addresses; each is 4096 bytes of native memory the caller owns for the transfer.</param>
internal readonly ref struct FramePageRun(ReadOnlySpan<nint> pages) : ISwapPageRun
{
    private const int PageSize = (int)Paging.PageSize;

    private readonly ReadOnlySpan<nint> _pages = pages;

    /// <inheritdoc />
    public int Count => _pages.Length;

    /// <inheritdoc />
    // unsafe: a span over a native page the caller owns.
    public unsafe Span<byte> Page(int index) => new((void*)_pages[index], PageSize);

    /// <inheritdoc />
    public SwapIoResult Write(ISwapDevice device, ulong slot, int start, int end) =>
        SwapGather.Write(device, slot, _pages[start..end]);

    /// <inheritdoc />
    public SwapIoResult Read(ISwapDevice device, ulong slot, int start, int end) =>
        SwapGather.Read(device, slot, _pages[start..end]);
}

namespace Hypervisor.HostMm.Swap;

/// <summary>A run of pages in one contiguous buffer: device calls take a slice of it.</summary>
/// <param name="buffer">Whole pages. A write run is built over a read-only span and never writes it (only <see cref="Read"/> writes).</param>
internal readonly ref struct BufferPageRun(Span<byte> buffer) : ISwapPageRun
{
    private const int PageSize = (int)Paging.PageSize;

    private readonly Span<byte> _buffer = buffer;

    /// <inheritdoc />
    public int Count => _buffer.Length / PageSize;

    /// <inheritdoc />
    public Span<byte> Page(int index) => _buffer.Slice(index * PageSize, PageSize);

    /// <inheritdoc />
    public SwapIoResult Write(ISwapDevice device, ulong slot, int start, int end) =>
        device.WriteRun(slot, _buffer[(start * PageSize)..(end * PageSize)]);

    /// <inheritdoc />
    public SwapIoResult Read(ISwapDevice device, ulong slot, int start, int end) =>
        device.ReadRun(slot, _buffer[(start * PageSize)..(end * PageSize)]);
}

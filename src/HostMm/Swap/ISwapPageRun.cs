namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The pages of one checked swap-area transfer, page <c>i</c> for slot <c>firstSlot + i</c>: one contiguous buffer
/// (<see cref="BufferPageRun"/>) or frames scattered in native memory (<see cref="FramePageRun"/>). The area's
/// per-page work (zero test, CRC-32C) reads <see cref="Page"/>; the device calls move a sub-run.
/// </summary>
internal interface ISwapPageRun
{
    /// <summary>Pages in the run.</summary>
    int Count { get; }

    /// <summary>Page <paramref name="index"/>'s 4096 bytes.</summary>
    Span<byte> Page(int index);

    /// <summary>Writes pages [<paramref name="start"/>, <paramref name="end"/>) to the slots from <paramref name="slot"/>.</summary>
    SwapIoResult Write(ISwapDevice device, ulong slot, int start, int end);

    /// <summary>Reads the slots from <paramref name="slot"/> into pages [<paramref name="start"/>, <paramref name="end"/>).</summary>
    SwapIoResult Read(ISwapDevice device, ulong slot, int start, int end);
}

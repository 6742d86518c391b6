namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A swap device that transfers a run of contiguous slots straight from or to pages scattered in native memory (the
/// frames of the host arena), with no bounce buffer: on a Linux file one <c>pwritev</c>/<c>preadv</c> whose iovecs
/// point at the frames. The swap area uses it when the device has it (<see cref="SwapArea.WriteFrames"/>,
/// <see cref="SwapArea.ReadFrames"/>); other devices get the pages through a contiguous buffer.
/// </summary>
/// <remarks>
/// <para>Page <c>i</c> of a call is the 4096 bytes of native memory at <c>pages[i]</c>, for slot
/// <c>firstSlot + i</c>. The caller keeps that memory allocated and owns it for the call (a swap-cache page, locked):
/// nothing else writes it during a write, or reads it during a read. An address of 0 is a bug in the caller and
/// throws <see cref="ArgumentException"/>; slots as <see cref="ISwapDevice"/>.</para>
/// <para>Results as <see cref="ISwapDevice.WriteRun"/> and <see cref="ISwapDevice.ReadRun"/>: on failure the
/// result names the first slot not transferred; the pages before it were transferred; after a failed read the
/// pages from that slot on hold undefined data.</para>
/// </remarks>
public interface IVectoredSwapDevice : ISwapDevice
{
    /// <summary>Writes the pages at <paramref name="pages"/> to the contiguous slots from <paramref name="firstSlot"/>.</summary>
    SwapIoResult WriteGather(ulong firstSlot, ReadOnlySpan<nint> pages);

    /// <summary>Reads the contiguous slots from <paramref name="firstSlot"/> into the pages at <paramref name="pages"/>.</summary>
    SwapIoResult ReadScatter(ulong firstSlot, ReadOnlySpan<nint> pages);
}

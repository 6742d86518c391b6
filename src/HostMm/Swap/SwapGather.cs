using System.Buffers;
using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// Gathered transfers (pages scattered in native memory, see <see cref="IVectoredSwapDevice"/>) on any device: a
/// vectored device takes them as they are; another gets them as one span when they happen to be adjacent, else
/// through a contiguous bounce buffer (one copy per page) and its <see cref="ISwapDevice.WriteRun"/> /
/// <see cref="ISwapDevice.ReadRun"/>. Also the fallback of a vectored device whose OS refuses the vectored call.
/// </summary>
// unsafe: the page addresses are raw pointers into native memory (the frame arena), owned by the caller for the call.
internal static unsafe class SwapGather
{
    private const int PageSize = (int)Paging.PageSize;

    /// <summary>Checks a gathered transfer: slots as <see cref="SwapDeviceGuard.CheckSlots"/>, no null page. Returns the page count.</summary>
    public static int Check(ISwapDevice device, ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        SwapDeviceGuard.CheckSlots(device, firstSlot, pages.Length);
        var zero = pages.IndexOf(0);
        if (zero >= 0)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"page {zero} of the gathered transfer at swap slot 0x{firstSlot:x} has address 0: every page is 4096 bytes of native memory"),
                nameof(pages));
        }

        return pages.Length;
    }

    /// <summary>Writes the pages at <paramref name="pages"/> to the slots from <paramref name="firstSlot"/> on <paramref name="device"/>, vectored where it can.</summary>
    public static SwapIoResult Write(ISwapDevice device, ulong firstSlot, ReadOnlySpan<nint> pages) =>
        device is IVectoredSwapDevice vectored ? vectored.WriteGather(firstSlot, pages) : WriteBounced(device, firstSlot, pages);

    /// <summary>Reads the slots from <paramref name="firstSlot"/> on <paramref name="device"/> into the pages at <paramref name="pages"/>, vectored where it can.</summary>
    public static SwapIoResult Read(ISwapDevice device, ulong firstSlot, ReadOnlySpan<nint> pages) =>
        device is IVectoredSwapDevice vectored ? vectored.ReadScatter(firstSlot, pages) : ReadBounced(device, firstSlot, pages);

    /// <summary>The write through <paramref name="device"/>'s plain run: one span when the pages are adjacent, else a bounce buffer.</summary>
    public static SwapIoResult WriteBounced(ISwapDevice device, ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var bytes = pages.Length * PageSize;
        if (IsAdjacent(pages))
        {
            return device.WriteRun(firstSlot, new ReadOnlySpan<byte>((void*)pages[0], bytes));
        }

        var bounce = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            for (var i = 0; i < pages.Length; i++)
            {
                new ReadOnlySpan<byte>((void*)pages[i], PageSize).CopyTo(bounce.AsSpan(i * PageSize, PageSize));
            }

            return device.WriteRun(firstSlot, bounce.AsSpan(0, bytes));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bounce);
        }
    }

    /// <summary>The read through <paramref name="device"/>'s plain run: one span when the pages are adjacent, else a bounce buffer copied out after.</summary>
    public static SwapIoResult ReadBounced(ISwapDevice device, ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var bytes = pages.Length * PageSize;
        if (IsAdjacent(pages))
        {
            return device.ReadRun(firstSlot, new Span<byte>((void*)pages[0], bytes));
        }

        var bounce = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            var result = device.ReadRun(firstSlot, bounce.AsSpan(0, bytes));

            // After a failure the pages from the failing slot on hold undefined data either way: copy them all.
            for (var i = 0; i < pages.Length; i++)
            {
                bounce.AsSpan(i * PageSize, PageSize).CopyTo(new Span<byte>((void*)pages[i], PageSize));
            }

            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bounce);
        }
    }

    private static bool IsAdjacent(ReadOnlySpan<nint> pages)
    {
        for (var i = 1; i < pages.Length; i++)
        {
            if (pages[i] != pages[i - 1] + PageSize)
            {
                return false;
            }
        }

        return true;
    }
}

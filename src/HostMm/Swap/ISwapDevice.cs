namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A page-granular block device behind a swap area (Linux's swap file or block device, or zram). Slot <c>s</c> is
/// the 4096-byte page at byte offset <c>s × 4096</c>; slot 0 holds the device's header and is never read or written
/// through this interface, so data slots are 1 to <see cref="SlotCount"/> − 1.
/// </summary>
/// <remarks>
/// <para>Run-time failures (the OS's I/O error, a full disk, an injected error, undecodable stored data) come back
/// as a <see cref="SwapIoResult"/> naming the failing slot, never as an exception. A slot outside the device, slot 0,
/// or a buffer that is not a whole number of pages is a bug in the caller and throws
/// <see cref="ArgumentOutOfRangeException"/> or <see cref="ArgumentException"/>.</para>
/// <para>A slot that was never written, or was discarded, holds undefined data (zeros on zram). After a failed
/// read the destination holds undefined data; after a failed write the slot does.</para>
/// <para>Thread safety: calls on different slots may run concurrently from any threads. Calls on the same slot
/// must be serialised by the caller (the swap area and its swap-cache owner do); a device never calls back
/// into its caller, so its own locks are leaves.</para>
/// </remarks>
public interface ISwapDevice : IDisposable
{
    /// <summary>Pages on the device, the header slot 0 included (Linux's <c>si->max</c>).</summary>
    ulong SlotCount { get; }

    /// <summary>
    /// True when a transfer completes in the calling thread in memory time, as zram (Linux's
    /// <c>SWP_SYNCHRONOUS_IO</c>): the swap-in path may bypass the swap cache and reclaim may free the page in the
    /// same pass. False for a file, whose I/O may sleep.
    /// </summary>
    bool IsSynchronous { get; }

    /// <summary>A short name for reports: <c>file:/tmp/hv-swap-….swap</c>, <c>zram</c>, <c>inject(zram)</c>.</summary>
    string Name { get; }

    /// <summary>Reads slot <paramref name="slot"/> into <paramref name="page"/> (exactly 4096 bytes).</summary>
    SwapIoResult Read(ulong slot, Span<byte> page);

    /// <summary>Writes <paramref name="page"/> (exactly 4096 bytes) to slot <paramref name="slot"/>.</summary>
    SwapIoResult Write(ulong slot, ReadOnlySpan<byte> page);

    /// <summary>
    /// Reads the contiguous slots <c>[firstSlot, firstSlot + pages.Length / 4096)</c> into <paramref name="pages"/>
    /// (a positive multiple of 4096 bytes); on a file this is one OS call. On failure the result names the first
    /// slot not read; the pages before it were read.
    /// </summary>
    SwapIoResult ReadRun(ulong firstSlot, Span<byte> pages);

    /// <summary>
    /// Writes <paramref name="pages"/> (a positive multiple of 4096 bytes) to the contiguous slots starting at
    /// <paramref name="firstSlot"/>; on a file this is one OS call. On failure the result names the first slot not
    /// written; the pages before it were written.
    /// </summary>
    SwapIoResult WriteRun(ulong firstSlot, ReadOnlySpan<byte> pages);

    /// <summary>
    /// Tells the device that the <paramref name="count"/> slots from <paramref name="firstSlot"/> hold nothing worth
    /// keeping (Linux's discard/TRIM and zram's slot-free notify): zram frees their memory; a file keeps its blocks.
    /// Their contents are undefined until written again. Never fails.
    /// </summary>
    void Discard(ulong firstSlot, int count = 1);

    /// <summary>A snapshot of the device's transfer counters.</summary>
    SwapDeviceStats GetStats();
}

using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// How to build a swap area (<c>--swap PATH|zram</c>, <c>--swap-size SIZE</c>, <c>--inject-swap-errors RATE</c>);
/// <see cref="SwapFactory"/> turns it into a device and an area.
/// </summary>
public sealed record SwapOptions
{
    /// <summary>Default size: 1 GiB.</summary>
    public const ulong DefaultSizeBytes = 1UL << 30;

    /// <summary>Smallest size: the header slot plus one page.</summary>
    public const ulong MinSizeBytes = 2 * Paging.PageSize;

    /// <summary>Most slots an area addresses (2^32, 16 TiB: the header's <c>last_page</c> is 32 bits, as Linux's).</summary>
    public const ulong MaxSlots = 1UL << 32;

    /// <summary>The device kind; default <see cref="SwapDeviceKind.File"/>.</summary>
    public SwapDeviceKind Kind { get; init; } = SwapDeviceKind.File;

    /// <summary>The swap file's path for <see cref="SwapDeviceKind.File"/>; null (default) = a new uniquely named file in the temp folder, deleted when the device is disposed.</summary>
    public string? Path { get; init; }

    /// <summary>
    /// <see cref="SwapDeviceKind.File"/> only: transfer with <c>O_DIRECT</c>, past the OS page cache, as Linux's swap
    /// I/O goes straight to the device's blocks (<c>--swap-io direct</c>). Default false: buffered, the page cache beneath.
    /// </summary>
    public bool DirectIo { get; init; }

    /// <summary>Size of the device in bytes, header slot included: a multiple of 4096, at least <see cref="MinSizeBytes"/>, at most <see cref="MaxSlots"/> pages.</summary>
    public ulong SizeBytes { get; init; } = DefaultSizeBytes;

    /// <summary>Readahead <c>page_cluster</c> (log2 of the most pages read per swap-in): 0 to <see cref="SwapReadahead.MaxPageCluster"/>, default 3.</summary>
    public int PageCluster { get; init; } = SwapReadahead.DefaultPageCluster;

    /// <summary>zram: a page that does not compress below this many bytes is stored raw; default <see cref="ZramSwapDevice.DefaultIncompressibleThreshold"/>.</summary>
    public int ZramIncompressibleThreshold { get; init; } = ZramSwapDevice.DefaultIncompressibleThreshold;

    /// <summary>When set, the device is wrapped in a <see cref="FaultInjectingSwapDevice"/> with these settings.</summary>
    public SwapFaultInjection? FaultInjection { get; init; }

    /// <summary>
    /// Throws <see cref="SwapConfigurationException"/> naming the first value that breaks a rule. Whether a file can
    /// be created at <see cref="Path"/> and the disk has room is checked when the device is created.
    /// </summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind))
        {
            throw new SwapConfigurationException(
                SwapRule.UnknownDeviceKind, $"swap device kind {(int)Kind} is unknown: use File or Zram", nameof(Kind));
        }

        if (DirectIo && Kind != SwapDeviceKind.File)
        {
            throw new SwapConfigurationException(
                SwapRule.DirectIoNotFile, $"direct I/O is for a swap file, not a {Kind.ToString().ToLowerInvariant()} device: use buffered I/O with it", nameof(DirectIo));
        }

        ValidateSize(SizeBytes, nameof(SizeBytes));
        SwapReadahead.ValidatePageCluster(PageCluster, nameof(PageCluster));
        ZramSwapDevice.ValidateThreshold(ZramIncompressibleThreshold, nameof(ZramIncompressibleThreshold));
        FaultInjection?.Validate();
    }

    /// <summary>Checks a device size against the size rules and returns its slot count (header slot included).</summary>
    internal static ulong ValidateSize(ulong sizeBytes, string paramName)
    {
        if (sizeBytes == 0)
        {
            throw new SwapConfigurationException(SwapRule.SizeZero, "swap size 0 is not allowed: a swap device needs at least a header page and one data page", paramName);
        }

        if (sizeBytes % Paging.PageSize != 0)
        {
            throw new SwapConfigurationException(
                SwapRule.SizeNotPageMultiple,
                string.Create(CultureInfo.InvariantCulture, $"swap size {sizeBytes} bytes is not a multiple of the {Paging.PageSize}-byte page"),
                paramName);
        }

        if (sizeBytes < MinSizeBytes)
        {
            throw new SwapConfigurationException(
                SwapRule.SizeTooSmall,
                string.Create(CultureInfo.InvariantCulture, $"swap size {sizeBytes} bytes is too small: it must hold the header slot plus one page ({MinSizeBytes} bytes)"),
                paramName);
        }

        var slots = sizeBytes / Paging.PageSize;
        if (slots > MaxSlots)
        {
            throw new SwapConfigurationException(
                SwapRule.SizeTooLarge,
                string.Create(CultureInfo.InvariantCulture, $"swap size {sizeBytes} bytes is too large: a swap area has at most {MaxSlots} slots ({(MaxSlots * Paging.PageSize) >> 40} TiB)"),
                paramName);
        }

        return slots;
    }
}

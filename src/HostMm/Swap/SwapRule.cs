namespace Hypervisor.HostMm.Swap;

/// <summary>The configuration rules a swap device or area can break (<see cref="SwapConfigurationException.Rule"/>).</summary>
public enum SwapRule
{
    /// <summary>The size is 0 bytes (<c>--swap-size 0</c>).</summary>
    SizeZero,

    /// <summary>The size is not a multiple of the 4096-byte page.</summary>
    SizeNotPageMultiple,

    /// <summary>The size cannot hold the header slot plus one page (8 KiB).</summary>
    SizeTooSmall,

    /// <summary>The size has more slots than a swap area addresses (<see cref="SwapOptions.MaxSlots"/>).</summary>
    SizeTooLarge,

    /// <summary>The swap file cannot be created or opened at the path (missing folder, a folder, no permission, a bad name).</summary>
    PathNotCreatable,

    /// <summary>The path names an existing, non-empty file that is not a swap file made by this program.</summary>
    ExistingFileNotSwap,

    /// <summary>The file system holding the swap file has less free space than the size.</summary>
    InsufficientDiskSpace,

    /// <summary>The device kind is not one of <see cref="SwapDeviceKind"/>'s values.</summary>
    UnknownDeviceKind,

    /// <summary>The readahead <c>page_cluster</c> is outside 0 to <see cref="SwapReadahead.MaxPageCluster"/>.</summary>
    PageClusterOutOfRange,

    /// <summary>The zram incompressible threshold is outside its bounds (<see cref="ZramSwapDevice.MinIncompressibleThreshold"/> to 4096).</summary>
    ZramThresholdOutOfRange,

    /// <summary>A fault-injection rate is not a number from 0 to 1.</summary>
    ErrorRateOutOfRange,

    /// <summary>Direct I/O was asked for a device that is not a swap file (<c>--swap-io direct</c> with zram).</summary>
    DirectIoNotFile,

    /// <summary>The swap file's file system, or this OS, cannot do direct I/O (<c>O_DIRECT</c>).</summary>
    DirectIoUnsupported,
}

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The outcome of one swap read or write. Run-time I/O failures are values of this type, never exceptions: the
/// caller decides (a failed write keeps the page resident and dirty; a failed read is a memory failure).
/// </summary>
public enum SwapIoStatus : byte
{
    /// <summary>The page was transferred; on a read its checksum matched.</summary>
    Ok = 0,

    /// <summary>The device failed the transfer (the OS reported an I/O error, or one was injected).</summary>
    IoError,

    /// <summary>A write found no space on the medium behind the device (ENOSPC, disk full).</summary>
    DeviceFull,

    /// <summary>A read returned data whose CRC-32C differs from the one recorded when the slot was written.</summary>
    ChecksumMismatch,
}

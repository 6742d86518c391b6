namespace Hypervisor.Vmm.Devices;

/// <summary>The fw_cfg item selectors this VMM serves (QEMU's numbering, <c>include/standard-headers/linux/qemu_fw_cfg.h</c>).</summary>
public enum FwCfgKey : ushort
{
    /// <summary>The 4-byte signature "QEMU".</summary>
    Signature = 0x0000,

    /// <summary>The interface feature bitmap, 32-bit LE: bit 0 = the traditional (port) interface.</summary>
    Id = 0x0001,

    /// <summary>Guest RAM size in bytes, 64-bit LE.</summary>
    RamSize = 0x0003,

    /// <summary>The number of CPUs present at boot, 16-bit LE.</summary>
    CpuCount = 0x0005,

    /// <summary>The maximum number of CPUs, 16-bit LE.</summary>
    MaxCpus = 0x000F,

    /// <summary>The file directory: a 32-bit BE count, then 64-byte entries (size BE32, select BE16, reserved, name[56]).</summary>
    FileDirectory = 0x0019,

    /// <summary>The selector of the first named file.</summary>
    FirstFile = 0x0020,
}

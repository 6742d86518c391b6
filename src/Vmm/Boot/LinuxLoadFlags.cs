namespace Hypervisor.Vmm.Boot;

/// <summary>The setup header's <c>loadflags</c> byte (offset 0x211) of the Linux/x86 boot protocol.</summary>
[Flags]
public enum LinuxLoadFlags : byte
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>LOADED_HIGH: the protected-mode kernel is loaded at 1 MiB or above (a bzImage); set by the kernel.</summary>
    LoadedHigh = 0x01,

    /// <summary>KASLR_FLAG: set by the kernel's decompressor when it randomised the load address.</summary>
    KaslrFlag = 0x02,

    /// <summary>QUIET_FLAG: the boot loader asks the early kernel to print nothing.</summary>
    QuietFlag = 0x20,

    /// <summary>KEEP_SEGMENTS: the 32-bit entry does not reload segment registers (obsolete).</summary>
    KeepSegments = 0x40,

    /// <summary>CAN_USE_HEAP: heap_end_ptr is valid for the real-mode setup code.</summary>
    CanUseHeap = 0x80,
}

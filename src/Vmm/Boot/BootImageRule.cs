namespace Hypervisor.Vmm.Boot;

/// <summary>The rule a guest image or boot request broke; carried by <see cref="BootImageException"/>.</summary>
public enum BootImageRule
{
    /// <summary>The file ends before a header, table or note it declares.</summary>
    Truncated,

    /// <summary>The file does not start with <c>0x7F 'E' 'L' 'F'</c>.</summary>
    BadMagic,

    /// <summary>EI_CLASS is neither ELFCLASS32 nor ELFCLASS64.</summary>
    UnsupportedClass,

    /// <summary>EI_DATA is not little-endian.</summary>
    UnsupportedEncoding,

    /// <summary>EI_VERSION or e_version is not EV_CURRENT (1).</summary>
    UnsupportedVersion,

    /// <summary>e_machine is not EM_X86_64 (ELF64) or EM_386 (ELF32).</summary>
    UnsupportedMachine,

    /// <summary>e_type is not ET_EXEC.</summary>
    UnsupportedType,

    /// <summary>e_phentsize does not match the class, or there are no program headers.</summary>
    BadProgramHeaderTable,

    /// <summary>The image has no PT_LOAD segment with a non-zero memory size.</summary>
    NoLoadableSegment,

    /// <summary>A segment's file bytes lie (partly) beyond the end of the file.</summary>
    SegmentBeyondFile,

    /// <summary>A PT_LOAD segment's p_filesz exceeds its p_memsz.</summary>
    FileSizeExceedsMemorySize,

    /// <summary>A segment's address plus size wraps the address space.</summary>
    SegmentAddressOverflow,

    /// <summary>Two PT_LOAD segments cover the same physical bytes.</summary>
    OverlappingSegments,

    /// <summary>An entry point (ELF, PVH or multiboot) lies outside every loaded segment.</summary>
    EntryOutsideSegments,

    /// <summary>A note in a PT_NOTE segment runs past the segment.</summary>
    MalformedNote,

    /// <summary>The Xen PHYS32_ENTRY note's descriptor is not a 4-byte (or zero-extended 8-byte) address.</summary>
    BadPvhNote,

    /// <summary>magic + flags + checksum of the multiboot header is not 0 (mod 2^32).</summary>
    BadMultibootChecksum,

    /// <summary>The multiboot header requires a feature (flag bits 3–15) this loader does not provide.</summary>
    UnsupportedMultibootFlags,

    /// <summary>The multiboot address fields (flag bit 16) are inconsistent with each other or the file.</summary>
    BadMultibootAddresses,

    /// <summary>A segment or boot structure falls outside guest RAM.</summary>
    OutsideGuestRam,

    /// <summary>The image has no entry point for the requested boot protocol.</summary>
    MissingEntry,

    /// <summary>The entry point or stack is not covered by the identity mapping the VMM builds.</summary>
    NotIdentityMapped,

    /// <summary>The kernel command line is too long or contains a NUL byte.</summary>
    BadCommandLine,

    /// <summary>The image was linked for the wrong protocol (e.g. an ELF32 image booted in 64-bit mode).</summary>
    WrongProtocol,

    /// <summary>A boot structure the VMM writes (GDT, page tables, start_info, command line) overlaps the image.</summary>
    OverlapsBootData,

    /// <summary>The initial RAM disk cannot be read, is empty, or does not fit in guest RAM.</summary>
    BadInitrd,

    /// <summary>The Linux setup header is malformed: boot_flag is not 0xAA55, the header runs past the setup sectors or the zero page's room for it, or the kernel is not a bzImage (LOADED_HIGH clear).</summary>
    BadLinuxHeader,

    /// <summary>The Linux boot-protocol version is older than 2.12, the first with a 64-bit entry and xloadflags.</summary>
    UnsupportedLinuxBootProtocol,

    /// <summary>The bzImage's xloadflags lack XLF_KERNEL_64: the kernel has no 64-bit entry at its load address + 0x200.</summary>
    NoLinux64BitEntry,

    /// <summary>The kernel's load address (pref_address) is below 1 MiB or not a multiple of kernel_alignment, or kernel_alignment is not a power of two.</summary>
    BadKernelPlacement,
}

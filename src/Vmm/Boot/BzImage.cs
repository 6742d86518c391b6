namespace Hypervisor.Vmm.Boot;

/// <summary>
/// A Linux/x86 bzImage for the boot protocol's 64-bit entry: the validated setup header and the protected-mode
/// kernel (the decompressor with its compressed payload), which <see cref="Load"/> places at pref_address.
/// </summary>
public sealed class BzImage : IBootImage
{
    private readonly byte[] _kernel;

    private BzImage(LinuxSetupHeader header, byte[] kernel)
    {
        Header = header;
        _kernel = kernel;
    }

    /// <summary>The setup header.</summary>
    public LinuxSetupHeader Header { get; }

    /// <summary>The protected-mode kernel: the file's bytes from (setup_sects + 1) × 512, syssize × 16 of them.</summary>
    public ReadOnlySpan<byte> Kernel => _kernel;

    /// <summary>Where <see cref="Load"/> puts the kernel: pref_address.</summary>
    public ulong LoadAddress => Header.PrefAddress;

    /// <summary>The 64-bit entry: the load address + 0x200.</summary>
    public ulong Entry64 => LoadAddress + LinuxSetupHeader.Entry64Offset;

    /// <summary>Bytes the kernel occupies from its load address: init_size, or the kernel's own size if larger.</summary>
    public ulong MemorySize => Math.Max(Header.InitSize, (ulong)_kernel.Length);

    /// <summary>Parses and validates a bzImage; the kernel bytes are copied.</summary>
    /// <param name="file">The whole bzImage file.</param>
    /// <exception cref="BootImageException">The header is bad or unsupported (see <see cref="LinuxSetupHeader.Parse"/>) or the file ends before the kernel it declares.</exception>
    public static BzImage Parse(ReadOnlySpan<byte> file)
    {
        var header = LinuxSetupHeader.Parse(file);
        var offset = header.KernelOffset;
        var declared = (long)header.SysSize * 16;
        var size = declared == 0 ? file.Length - offset : declared;
        if (offset + size > file.Length)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"image of {file.Length} bytes is truncated: syssize 0x{header.SysSize:x} declares a protected-mode kernel of {size:N0} bytes at 0x{offset:x}, ending at 0x{offset + size:x}");
        }

        if (size <= (long)LinuxSetupHeader.Entry64Offset)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"protected-mode kernel of {size} bytes ends before its 64-bit entry at offset 0x{LinuxSetupHeader.Entry64Offset:x}");
        }

        return new BzImage(header, file.Slice(offset, (int)size).ToArray());
    }

    /// <summary>
    /// Copies the protected-mode kernel to pref_address. The rest of init_size is reserved (the loaded image covers
    /// it, so no boot data lands there) but not written: the decompressor clears what it uses.
    /// </summary>
    /// <param name="memory">Guest RAM.</param>
    /// <exception cref="BootImageException">init_size bytes from pref_address do not fit in guest RAM.</exception>
    public LoadedImage Load(IGuestPhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        // pref_address is any multiple of kernel_alignment, up to 2^64 - kernel_alignment: compared without adding, the
        // end cannot wrap past the top of the address space into RAM.
        var end = unchecked(LoadAddress + MemorySize);
        if (LoadAddress > memory.Size || MemorySize > memory.Size - LoadAddress)
        {
            throw new BootImageException(
                BootImageRule.OutsideGuestRam,
                $"kernel at pref_address 0x{LoadAddress:x} with init_size 0x{Header.InitSize:x} ends at 0x{(UInt128)LoadAddress + MemorySize:x}, beyond guest RAM of 0x{memory.Size:x} bytes ({memory.Size >> 20} MiB): give the VM more memory (-m)");
        }

        memory.Write(LoadAddress, _kernel);
        var segment = new ElfSegment(ElfSegment.BzImageKernelIndex, (ulong)Header.KernelOffset, LoadAddress, LoadAddress, (ulong)_kernel.Length, MemorySize, 7);
        return new LoadedImage([segment], Is64Bit: true, Entry64, PvhEntry: null, MultibootEntry: null, LoadAddress, end, Header);
    }
}

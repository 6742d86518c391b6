namespace Hypervisor.Vmm.Boot;

/// <summary>
/// An initial RAM disk (initramfs) handed to the guest as a boot module: placed page-aligned at the top of usable
/// RAM below 4 GiB, as QEMU and the Linux boot loaders place it, clear of the image and of the boot data in the
/// first megabyte.
/// </summary>
public sealed class InitialRamDisk
{
    /// <summary>The highest end address a module may reach: the protocols' 32-bit module fields.</summary>
    public const ulong AddressLimit = 1ul << 32;

    private InitialRamDisk(string name, byte[] data)
    {
        Name = name;
        Data = data;
    }

    /// <summary>Where the disk came from (a file path or a caller's label), for messages.</summary>
    public string Name { get; }

    /// <summary>The disk's bytes.</summary>
    public byte[] Data { get; }

    /// <summary>Reads <paramref name="path"/> into memory.</summary>
    /// <param name="path">An existing, non-empty file.</param>
    /// <exception cref="BootImageException">The file is missing, unreadable or empty (<see cref="BootImageRule.BadInitrd"/>).</exception>
    public static InitialRamDisk Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new BootImageException(BootImageRule.BadInitrd, $"initrd '{path}' cannot be read: {e.Message}");
        }

        return FromBytes(path, data);
    }

    /// <summary>Wraps <paramref name="data"/> (not copied).</summary>
    /// <param name="name">A label for messages.</param>
    /// <param name="data">The disk's bytes; at least one.</param>
    /// <exception cref="BootImageException">The data is empty (<see cref="BootImageRule.BadInitrd"/>).</exception>
    public static InitialRamDisk FromBytes(string name, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0)
        {
            throw new BootImageException(BootImageRule.BadInitrd, $"initrd '{name}' is empty: an initramfs is at least one cpio header");
        }

        return new InitialRamDisk(name, data);
    }

    /// <summary>
    /// Writes the disk at the highest page-aligned address whose end is at most min(RAM, 4 GiB) and returns that
    /// address.
    /// </summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image, which the disk must not overlap.</param>
    /// <exception cref="BootImageException">The disk does not fit between the image (or 1 MiB) and the top of RAM (<see cref="BootImageRule.BadInitrd"/>).</exception>
    public ulong Place(IGuestPhysicalMemory memory, LoadedImage? image) => Place(memory, image, AddressLimit);

    /// <summary>
    /// Writes the disk at the highest page-aligned address whose end is at most min(RAM, <paramref name="limit"/>)
    /// and returns that address.
    /// </summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image, which the disk must not overlap.</param>
    /// <param name="limit">The highest end address the disk may reach (exclusive), e.g. a kernel's initrd_addr_max + 1.</param>
    /// <exception cref="BootImageException">The disk does not fit between the image (or 1 MiB) and min(RAM, limit) (<see cref="BootImageRule.BadInitrd"/>).</exception>
    public ulong Place(IGuestPhysicalMemory memory, LoadedImage? image, ulong limit)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var top = Math.Min(memory.Size, limit) & ~0xFFFul;
        var size = (ulong)Data.Length;
        var floor = Math.Max(GuestMemoryMap.HighMemoryStart, image?.EndGpa ?? 0);
        if (size > top || ((top - size) & ~0xFFFul) < floor)
        {
            var ceiling = limit < memory.Size ? $"the highest end allowed, 0x{limit:x}" : "the top of RAM";
            throw new BootImageException(
                BootImageRule.BadInitrd,
                $"initrd '{Name}' of {size:N0} bytes does not fit in guest RAM between 0x{floor:x} (the image's end) and 0x{top:x} ({ceiling}): give the VM more memory (-m)");
        }

        var gpa = (top - size) & ~0xFFFul;
        BootMemory.Place(memory, image, gpa, Data, "initrd");
        return gpa;
    }
}

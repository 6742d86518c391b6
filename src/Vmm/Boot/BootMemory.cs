using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.Vmm.Boot;

/// <summary>Checked writes of boot structures and shared encodings for the boot-protocol builders.</summary>
internal static class BootMemory
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="gpa"/> after checking it fits in RAM and misses the image.</summary>
    public static void Place(IGuestPhysicalMemory memory, LoadedImage? image, ulong gpa, ReadOnlySpan<byte> data, string what)
    {
        var end = gpa + (ulong)data.Length;
        if (end > memory.Size)
        {
            throw new BootImageException(
                BootImageRule.OutsideGuestRam,
                $"{what} [0x{gpa:x}, 0x{end:x}) lies outside guest RAM of 0x{memory.Size:x} bytes: boot structures must fit in RAM");
        }

        if (image is not null && image.Overlaps(gpa, end))
        {
            throw new BootImageException(
                BootImageRule.OverlapsBootData,
                $"{what} [0x{gpa:x}, 0x{end:x}) overlaps the image loaded at [0x{image.LowestGpa:x}, 0x{image.EndGpa:x}): link the image above the VMM's boot data");
        }

        memory.Write(gpa, data);
    }

    /// <summary>The command line as NUL-terminated UTF-8, at most <paramref name="maxBytes"/> bytes with the NUL.</summary>
    public static byte[] EncodeCommandLine(string commandLine, int maxBytes)
    {
        ArgumentNullException.ThrowIfNull(commandLine);
        if (commandLine.Contains('\0', StringComparison.Ordinal))
        {
            throw new BootImageException(
                BootImageRule.BadCommandLine,
                $"command line \"{commandLine.Replace("\0", "\\0", StringComparison.Ordinal)}\" contains a NUL byte: the guest reads it as a C string");
        }

        var bytes = new byte[Encoding.UTF8.GetByteCount(commandLine) + 1];
        Encoding.UTF8.GetBytes(commandLine, bytes);
        if (bytes.Length > maxBytes)
        {
            throw new BootImageException(
                BootImageRule.BadCommandLine,
                $"command line of {bytes.Length - 1} bytes is too long: at most {maxBytes - 1} bytes fit");
        }

        return bytes;
    }

    /// <summary>Little-endian bytes of <paramref name="values"/>.</summary>
    public static byte[] ToBytes(ReadOnlySpan<ulong> values)
    {
        var bytes = new byte[values.Length * 8];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), values[i]);
        }

        return bytes;
    }

    /// <summary>The flat 32-bit protected-mode state PVH and multiboot enter with (paging off), after <paramref name="gdt"/>.</summary>
    public static InitialCpuState Flat32(ulong entry, ulong gdtBase, ReadOnlySpan<ulong> gdt)
    {
        var code = SegmentCache.FromDescriptor(0x08, gdt[1]);
        var data = SegmentCache.FromDescriptor(0x10, gdt[2]);
        return new InitialCpuState
        {
            Rip = entry,
            Rflags = InitialCpuState.RflagsReserved,
            Cr0 = InitialCpuState.Cr0Pe,
            Cs = code,
            Ds = data,
            Es = data,
            Fs = data,
            Gs = data,
            Ss = data,
            Tr = SegmentCache.FromDescriptor(0x18, gdt[3]),
            GdtBase = gdtBase,
            GdtLimit = (ushort)((gdt.Length * 8) - 1),
        };
    }
}

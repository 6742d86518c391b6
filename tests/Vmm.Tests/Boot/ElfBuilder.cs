using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>Writes small ELF32/ELF64 executables for the boot tests; every header field can be overridden.</summary>
internal sealed class ElfBuilder
{
    /// <summary>File offset of the first segment's data; each later segment starts 0x1000 further.</summary>
    public const int DataOffset = 0x1000;

    public bool Is64 { get; init; } = true;

    public byte? Class { get; init; }

    public byte Data { get; init; } = 1;

    public byte IdentVersion { get; init; } = 1;

    public ushort Type { get; init; } = 2;

    public ushort? Machine { get; init; }

    public uint Version { get; init; } = 1;

    public ulong Entry { get; init; }

    public ushort? PhentSize { get; init; }

    public List<ElfSegmentSpec> Segments { get; init; } = [];

    public static ElfBuilder Elf64(ulong entry, params ElfSegmentSpec[] segments) => new() { Entry = entry, Segments = [.. segments] };

    public static ElfBuilder Elf32(ulong entry, params ElfSegmentSpec[] segments) => new() { Is64 = false, Entry = entry, Segments = [.. segments] };

    public byte[] Build()
    {
        var headerSize = Is64 ? 64 : 52;
        var phentsize = Is64 ? 56 : 32;
        var size = DataOffset + (Segments.Count * 0x1000);
        foreach (var s in Segments.Where(s => s.Offset is not null))
        {
            size = Math.Max(size, (int)Math.Min(s.Offset!.Value + (ulong)s.Data.Length, 1 << 20));
        }

        var file = new byte[size];
        var f = file.AsSpan();
        f[0] = 0x7F;
        f[1] = (byte)'E';
        f[2] = (byte)'L';
        f[3] = (byte)'F';
        f[4] = Class ?? (byte)(Is64 ? 2 : 1);
        f[5] = Data;
        f[6] = IdentVersion;
        BinaryPrimitives.WriteUInt16LittleEndian(f[16..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(f[18..], Machine ?? (ushort)(Is64 ? 62 : 3));
        BinaryPrimitives.WriteUInt32LittleEndian(f[20..], Version);
        if (Is64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(f[24..], Entry);
            BinaryPrimitives.WriteUInt64LittleEndian(f[32..], (ulong)headerSize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[52..], (ushort)headerSize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[54..], PhentSize ?? (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[56..], (ushort)Segments.Count);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(f[24..], (uint)Entry);
            BinaryPrimitives.WriteUInt32LittleEndian(f[28..], (uint)headerSize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[40..], (ushort)headerSize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[42..], PhentSize ?? (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(f[44..], (ushort)Segments.Count);
        }

        for (var i = 0; i < Segments.Count; i++)
        {
            var s = Segments[i];
            var offset = s.Offset ?? (ulong)(DataOffset + (i * 0x1000));
            // Data that would not lie within the file (an offset near 2^64 included) is not written.
            if (offset <= (ulong)file.Length && (ulong)s.Data.Length <= (ulong)file.Length - offset)
            {
                s.Data.CopyTo(f[(int)offset..]);
            }

            var fileSize = s.FileSize ?? (ulong)s.Data.Length;
            var memSize = s.MemorySize ?? (ulong)s.Data.Length;
            var vaddr = s.VirtualAddress ?? s.PhysicalAddress;
            var ph = f[(headerSize + (i * phentsize))..];
            BinaryPrimitives.WriteUInt32LittleEndian(ph, s.Type);
            if (Is64)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], s.Flags);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], offset);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], vaddr);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], s.PhysicalAddress);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], fileSize);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memSize);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], s.Align);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], (uint)offset);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[8..], (uint)vaddr);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[12..], (uint)s.PhysicalAddress);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[16..], (uint)fileSize);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[20..], (uint)memSize);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[24..], s.Flags);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[28..], (uint)s.Align);
            }
        }

        return file;
    }

    /// <summary>An ELF note with 4-byte padding: namesz, descsz, type, name + NUL, desc.</summary>
    public static byte[] Note(string name, uint type, byte[] desc)
    {
        var nameBytes = Encoding.ASCII.GetBytes(name + "\0");
        var namePadded = (nameBytes.Length + 3) & ~3;
        var descPadded = (desc.Length + 3) & ~3;
        var note = new byte[12 + namePadded + descPadded];
        BinaryPrimitives.WriteUInt32LittleEndian(note, (uint)nameBytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(4), (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(8), type);
        nameBytes.CopyTo(note, 12);
        desc.CopyTo(note, 12 + namePadded);
        return note;
    }

    /// <summary>The Xen PHYS32_ENTRY note for <paramref name="entry"/>.</summary>
    public static byte[] PvhNote(uint entry) => Note("Xen", 18, BitConverter.GetBytes(entry));

    /// <summary>A multiboot v1 header; the checksum is correct unless given; address fields are appended when any is given.</summary>
    public static byte[] MultibootHeader(uint flags, uint? checksum = null, uint[]? addressFields = null)
    {
        var bytes = new byte[addressFields is null ? 12 : 32];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, 0x1BADB002);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), checksum ?? unchecked(0u - 0x1BADB002u - flags));
        for (var i = 0; addressFields is not null && i < addressFields.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12 + (i * 4)), addressFields[i]);
        }

        return bytes;
    }

    /// <summary><paramref name="count"/> bytes 1, 2, 3, … (never zero, so bss is distinguishable).</summary>
    public static byte[] Pattern(int count) => [.. Enumerable.Range(0, count).Select(i => (byte)((i % 255) + 1))];
}

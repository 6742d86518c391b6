using System.Buffers.Binary;
using System.Collections.ObjectModel;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// A validated little-endian x86 / x86-64 ELF executable: its PT_LOAD segments, entry point, the Xen PVH entry
/// from a PT_NOTE (<c>XEN_ELFNOTE_PHYS32_ENTRY</c>) and a multiboot v1 header, whichever are present.
/// </summary>
/// <remarks>
/// <see cref="Parse"/> checks every rule once, so that a loaded image never needs re-checking: header fields,
/// program-header table and segments within the file, p_filesz ≤ p_memsz, no two PT_LOAD segments overlapping
/// physically, every entry point inside a loaded segment, the PVH note's size and the multiboot checksum.
/// </remarks>
public sealed class ElfImage : IBootImage
{
    /// <summary>EM_386, the machine of an ELF32 image.</summary>
    public const ushort MachineI386 = 3;

    /// <summary>EM_X86_64, the machine of an ELF64 image.</summary>
    public const ushort MachineX86_64 = 62;

    /// <summary>The ELF note name of Xen notes ("Xen").</summary>
    public const string XenNoteName = "Xen";

    /// <summary>XEN_ELFNOTE_PHYS32_ENTRY, the note type holding the PVH 32-bit entry point.</summary>
    public const uint XenElfNotePhys32Entry = 18;

    /// <summary>How far into the file a multiboot v1 header may start.</summary>
    public const int MultibootSearchLimit = 8192;

    private const uint PtLoad = 1;
    private const uint PtNote = 4;
    private const ushort EtExec = 2;
    private const int Elf64HeaderSize = 64;
    private const int Elf32HeaderSize = 52;
    private const int Elf64PhdrSize = 56;
    private const int Elf32PhdrSize = 32;

    private readonly byte[] _file;

    private ElfImage(
        byte[] file,
        bool is64Bit,
        ushort machine,
        ulong entry,
        IReadOnlyList<ElfSegment> segments,
        uint? pvhEntry,
        MultibootHeader? multiboot,
        IReadOnlyList<ElfSegment> loadPlan)
    {
        _file = file;
        Is64Bit = is64Bit;
        Machine = machine;
        Entry = entry;
        Segments = segments;
        PvhEntry = pvhEntry;
        Multiboot = multiboot;
        LoadPlan = loadPlan;
    }

    /// <summary>True for ELFCLASS64, false for ELFCLASS32.</summary>
    public bool Is64Bit { get; }

    /// <summary>e_machine: <see cref="MachineX86_64"/> or <see cref="MachineI386"/>.</summary>
    public ushort Machine { get; }

    /// <summary>e_entry.</summary>
    public ulong Entry { get; }

    /// <summary>The PT_LOAD segments with a non-zero memory size, in program-header order.</summary>
    public IReadOnlyList<ElfSegment> Segments { get; }

    /// <summary>The 32-bit physical entry from the Xen PHYS32_ENTRY note, or null without one.</summary>
    public uint? PvhEntry { get; }

    /// <summary>The multiboot v1 header, or null when the first 8 KiB hold none.</summary>
    public MultibootHeader? Multiboot { get; }

    /// <summary>
    /// What a loader places in memory: the multiboot address-field segment when the multiboot header has flag
    /// bit 16 (as QEMU does), otherwise <see cref="Segments"/>.
    /// </summary>
    public IReadOnlyList<ElfSegment> LoadPlan { get; }

    /// <summary>
    /// The multiboot entry: entry_addr with the address fields, otherwise e_entry; null without a multiboot
    /// header.
    /// </summary>
    public uint? MultibootEntry => Multiboot switch
    {
        null => null,
        { HasAddressFields: true } header => header.EntryAddress,
        _ => (uint)Entry,
    };

    /// <summary>The file bytes of <paramref name="segment"/> (p_filesz bytes from p_offset; none when p_filesz is 0).</summary>
    /// <param name="segment">A segment of this image's <see cref="LoadPlan"/> or <see cref="Segments"/>.</param>
    /// <remarks>A segment without file bytes (all bss) may carry any p_offset: <see cref="Parse"/> checks the offset only when p_filesz is non-zero.</remarks>
    public ReadOnlySpan<byte> GetFileData(in ElfSegment segment) =>
        segment.FileSize == 0 ? [] : _file.AsSpan(checked((int)segment.Offset), checked((int)segment.FileSize));

    /// <summary>Places the image with <see cref="ImageLoader.Load"/>.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <exception cref="BootImageException">A segment falls outside guest RAM.</exception>
    public LoadedImage Load(IGuestPhysicalMemory memory) => ImageLoader.Load(this, memory);

    /// <summary>Parses and validates an ELF executable; the bytes are copied.</summary>
    /// <param name="file">The whole image file.</param>
    /// <returns>The validated image.</returns>
    /// <exception cref="BootImageException">The image breaks one of the rules in <see cref="BootImageRule"/>.</exception>
    public static ElfImage Parse(ReadOnlySpan<byte> file)
    {
        if (file.Length < 16)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"image of {file.Length} bytes is truncated: an ELF identification needs 16 bytes");
        }

        if (file[0] != 0x7F || file[1] != (byte)'E' || file[2] != (byte)'L' || file[3] != (byte)'F')
        {
            throw new BootImageException(
                BootImageRule.BadMagic,
                $"image magic 0x{file[0]:x2} 0x{file[1]:x2} 0x{file[2]:x2} 0x{file[3]:x2} is not an ELF file: it must start with 0x7f 'E' 'L' 'F'");
        }

        var is64 = file[4] switch
        {
            1 => false,
            2 => true,
            var c => throw new BootImageException(
                BootImageRule.UnsupportedClass,
                $"ELF class {c} is not supported: EI_CLASS must be 1 (ELFCLASS32) or 2 (ELFCLASS64)"),
        };
        if (file[5] != 1)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedEncoding,
                $"ELF data encoding {file[5]} is not supported: EI_DATA must be 1 (little-endian)");
        }

        if (file[6] != 1)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedVersion,
                $"ELF identification version {file[6]} is not supported: EI_VERSION must be 1 (EV_CURRENT)");
        }

        var headerSize = is64 ? Elf64HeaderSize : Elf32HeaderSize;
        if (file.Length < headerSize)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"image of {file.Length} bytes is truncated: an ELF{(is64 ? 64 : 32)} header needs {headerSize} bytes");
        }

        var type = U16(file, 16);
        var machine = U16(file, 18);
        var version = U32(file, 20);
        if (type != EtExec)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedType,
                $"ELF type {type} is not supported: e_type must be 2 (ET_EXEC)");
        }

        var expectedMachine = is64 ? MachineX86_64 : MachineI386;
        if (machine != expectedMachine)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedMachine,
                $"ELF{(is64 ? 64 : 32)} machine {machine} is not supported: e_machine must be {expectedMachine} ({(is64 ? "EM_X86_64" : "EM_386")})");
        }

        if (version != 1)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedVersion,
                $"ELF version {version} is not supported: e_version must be 1 (EV_CURRENT)");
        }

        ulong entry, phoff;
        int phentsize, phnum;
        if (is64)
        {
            entry = U64(file, 24);
            phoff = U64(file, 32);
            phentsize = U16(file, 54);
            phnum = U16(file, 56);
        }
        else
        {
            entry = U32(file, 24);
            phoff = U32(file, 28);
            phentsize = U16(file, 42);
            phnum = U16(file, 44);
        }

        var expectedPhentsize = is64 ? Elf64PhdrSize : Elf32PhdrSize;
        if (phnum == 0 || phentsize != expectedPhentsize)
        {
            throw new BootImageException(
                BootImageRule.BadProgramHeaderTable,
                $"program header table of {phnum} entries of {phentsize} bytes is not usable: an executable needs at least one entry of {expectedPhentsize} bytes");
        }

        var tableSize = (ulong)phnum * (ulong)phentsize;
        if (!Within(phoff, tableSize, file.Length))
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"program header table [0x{phoff:x}, 0x{phoff + tableSize:x}) is truncated: the file ends at 0x{file.Length:x}");
        }

        var segments = new List<ElfSegment>();
        uint? pvhEntry = null;
        for (var i = 0; i < phnum; i++)
        {
            var ph = file.Slice((int)phoff + (i * phentsize), phentsize);
            uint pType, pFlags;
            ulong pOffset, pVaddr, pPaddr, pFilesz, pMemsz, pAlign;
            if (is64)
            {
                pType = U32(ph, 0);
                pFlags = U32(ph, 4);
                pOffset = U64(ph, 8);
                pVaddr = U64(ph, 16);
                pPaddr = U64(ph, 24);
                pFilesz = U64(ph, 32);
                pMemsz = U64(ph, 40);
                pAlign = U64(ph, 48);
            }
            else
            {
                pType = U32(ph, 0);
                pOffset = U32(ph, 4);
                pVaddr = U32(ph, 8);
                pPaddr = U32(ph, 12);
                pFilesz = U32(ph, 16);
                pMemsz = U32(ph, 20);
                pFlags = U32(ph, 24);
                pAlign = U32(ph, 28);
            }

            if (pType == PtLoad)
            {
                var segment = new ElfSegment(i, pOffset, pVaddr, pPaddr, pFilesz, pMemsz, pFlags);
                CheckLoadSegment(segment, file.Length);
                if (pMemsz != 0)
                {
                    segments.Add(segment);
                }
            }
            else if (pType == PtNote)
            {
                if (!Within(pOffset, pFilesz, file.Length))
                {
                    throw new BootImageException(
                        BootImageRule.SegmentBeyondFile,
                        $"PT_NOTE segment {i} file range [0x{pOffset:x}, 0x{pOffset + pFilesz:x}) lies beyond the file end 0x{file.Length:x}: segments must lie within the file");
                }

                pvhEntry = FindPvhEntry(file.Slice((int)pOffset, (int)pFilesz), i, pAlign == 8 ? 8 : 4) ?? pvhEntry;
            }
        }

        if (segments.Count == 0)
        {
            throw new BootImageException(
                BootImageRule.NoLoadableSegment,
                $"image has no PT_LOAD segment with a non-zero p_memsz among its {phnum} program headers: there is nothing to load");
        }

        CheckOverlaps(segments);
        if (!segments.Exists(s => s.ContainsVirtual(entry) || s.ContainsPhysical(entry)))
        {
            throw new BootImageException(
                BootImageRule.EntryOutsideSegments,
                $"ELF entry 0x{entry:x} lies outside every PT_LOAD segment ({Describe(segments)}): the entry must be loaded");
        }

        var multiboot = FindMultiboot(file);
        var loadPlan = new ReadOnlyCollection<ElfSegment>(segments);
        if (multiboot is { HasAddressFields: true } header)
        {
            loadPlan = new ReadOnlyCollection<ElfSegment>([MultibootSegment(header, file.Length)]);
        }
        else if (multiboot is not null && (entry > uint.MaxValue || !segments.Exists(s => s.ContainsPhysical(entry))))
        {
            throw new BootImageException(
                BootImageRule.EntryOutsideSegments,
                $"multiboot entry 0x{entry:x} (e_entry) lies outside every PT_LOAD segment's physical range ({Describe(segments)}): a multiboot kernel is entered at a physical address below 4 GiB");
        }

        // The PVH entry is physical and must lie in what is loaded: with multiboot address fields (flag bit 16) that
        // is their segment, which replaces the PT_LOAD segments for every protocol.
        if (pvhEntry is { } pvh && !loadPlan.Any(s => s.ContainsPhysical(pvh)))
        {
            var what = multiboot is { HasAddressFields: true } ? "the multiboot address-field segment, which replaces the PT_LOAD segments" : "every PT_LOAD segment";
            throw new BootImageException(
                BootImageRule.EntryOutsideSegments,
                $"PVH entry 0x{pvh:x} lies outside {what} ({Describe([.. loadPlan])}): the entry must be loaded");
        }

        return new ElfImage(
            file.ToArray(),
            is64,
            machine,
            entry,
            new ReadOnlyCollection<ElfSegment>(segments),
            pvhEntry,
            multiboot,
            loadPlan);
    }

    private static void CheckLoadSegment(in ElfSegment s, int fileLength)
    {
        if (s.FileSize > s.MemorySize)
        {
            throw new BootImageException(
                BootImageRule.FileSizeExceedsMemorySize,
                $"{s.Name} p_filesz 0x{s.FileSize:x} exceeds its p_memsz 0x{s.MemorySize:x}: p_filesz must be at most p_memsz");
        }

        if (s.FileSize != 0 && !Within(s.Offset, s.FileSize, fileLength))
        {
            throw new BootImageException(
                BootImageRule.SegmentBeyondFile,
                $"{s.Name} file range [0x{s.Offset:x}, 0x{s.Offset + s.FileSize:x}) lies beyond the file end 0x{fileLength:x}: segments must lie within the file");
        }

        if (s.PhysicalAddress + s.MemorySize < s.PhysicalAddress || s.VirtualAddress + s.MemorySize < s.VirtualAddress)
        {
            throw new BootImageException(
                BootImageRule.SegmentAddressOverflow,
                $"{s.Name} at p_paddr 0x{s.PhysicalAddress:x} / p_vaddr 0x{s.VirtualAddress:x} with p_memsz 0x{s.MemorySize:x} wraps the address space: address + size must not overflow");
        }
    }

    private static void CheckOverlaps(List<ElfSegment> segments)
    {
        var sorted = segments.OrderBy(s => s.PhysicalAddress).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            if (sorted[i].PhysicalAddress < sorted[i - 1].PhysicalEnd)
            {
                var (a, b) = sorted[i - 1].Index < sorted[i].Index ? (sorted[i - 1], sorted[i]) : (sorted[i], sorted[i - 1]);
                throw new BootImageException(
                    BootImageRule.OverlappingSegments,
                    $"{a} and {b} overlap: PT_LOAD segments must not share physical addresses");
            }
        }
    }

    private static uint? FindPvhEntry(ReadOnlySpan<byte> notes, int segmentIndex, int align)
    {
        uint? found = null;
        var at = 0;
        while (at < notes.Length)
        {
            if (notes.Length - at < 12)
            {
                throw new BootImageException(
                    BootImageRule.MalformedNote,
                    $"note at offset 0x{at:x} of PT_NOTE segment {segmentIndex} is truncated: a note header needs 12 bytes, {notes.Length - at} remain");
            }

            var nameSize = U32(notes, at);
            var descSize = U32(notes, at + 4);
            var type = U32(notes, at + 8);
            var nameStart = (ulong)at + 12;
            var descStart = AlignUp(nameStart + nameSize, align);
            var next = AlignUp(descStart + descSize, align);
            if (descStart + descSize > (ulong)notes.Length)
            {
                throw new BootImageException(
                    BootImageRule.MalformedNote,
                    $"note at offset 0x{at:x} of PT_NOTE segment {segmentIndex} (namesz {nameSize}, descsz {descSize}) runs past the segment's {notes.Length} bytes: a note must lie within its segment");
            }

            var name = notes.Slice((int)nameStart, (int)nameSize);
            if (type == XenElfNotePhys32Entry && name.SequenceEqual("Xen\0"u8))
            {
                var desc = notes.Slice((int)descStart, (int)descSize);
                found = descSize switch
                {
                    4 => U32(desc, 0),
                    8 when U32(desc, 4) == 0 => U32(desc, 0),
                    _ => throw new BootImageException(
                        BootImageRule.BadPvhNote,
                        descSize == 8
                            ? $"Xen PHYS32_ENTRY note in PT_NOTE segment {segmentIndex} holds entry 0x{U64(desc, 0):x}: the PVH entry must be a 32-bit physical address"
                            : $"Xen PHYS32_ENTRY note in PT_NOTE segment {segmentIndex} has descsz {descSize}: it must be 4 (or 8, zero-extended)"),
                };
            }

            at = (int)Math.Min(next, (ulong)notes.Length);
        }

        return found;
    }

    private static MultibootHeader? FindMultiboot(ReadOnlySpan<byte> file)
    {
        var limit = Math.Min(file.Length, MultibootSearchLimit);
        for (var at = 0; at + 12 <= limit; at += 4)
        {
            if (U32(file, at) != MultibootHeader.Magic)
            {
                continue;
            }

            var flags = U32(file, at + 4);
            var checksum = U32(file, at + 8);
            if (unchecked(MultibootHeader.Magic + flags + checksum) != 0)
            {
                throw new BootImageException(
                    BootImageRule.BadMultibootChecksum,
                    $"multiboot header at offset 0x{at:x} has checksum 0x{checksum:x8} with flags 0x{flags:x8}: magic + flags + checksum must be 0 mod 2^32 (checksum 0x{unchecked(0u - MultibootHeader.Magic - flags):x8})");
            }

            var unsupported = flags & 0xFFFF & ~MultibootHeader.SupportedRequirements;
            if (unsupported != 0)
            {
                throw new BootImageException(
                    BootImageRule.UnsupportedMultibootFlags,
                    $"multiboot header at offset 0x{at:x} requires flags 0x{unsupported:x}: only requirement bits 0-2 (0x{MultibootHeader.SupportedRequirements:x}) are supported");
            }

            if ((flags & MultibootHeader.AddressFieldsFlag) == 0)
            {
                return new MultibootHeader(at, flags, 0, 0, 0, 0, 0);
            }

            if (file.Length < at + 32)
            {
                throw new BootImageException(
                    BootImageRule.Truncated,
                    $"multiboot header at offset 0x{at:x} with address fields (flag bit 16) is truncated: it needs 32 bytes, the file ends at 0x{file.Length:x}");
            }

            return new MultibootHeader(
                at, flags, U32(file, at + 12), U32(file, at + 16), U32(file, at + 20), U32(file, at + 24), U32(file, at + 28));
        }

        return null;
    }

    private static ElfSegment MultibootSegment(MultibootHeader h, int fileLength)
    {
        string Fail(string rule) =>
            $"multiboot address fields header_addr 0x{h.HeaderAddress:x}, load_addr 0x{h.LoadAddress:x}, load_end_addr 0x{h.LoadEndAddress:x}, bss_end_addr 0x{h.BssEndAddress:x}, entry_addr 0x{h.EntryAddress:x}: {rule}";

        if (h.LoadAddress > h.HeaderAddress || h.HeaderAddress - h.LoadAddress > (uint)h.FileOffset)
        {
            throw new BootImageException(
                BootImageRule.BadMultibootAddresses,
                Fail($"load_addr must be at most header_addr and header_addr - load_addr at most the header's file offset 0x{h.FileOffset:x}"));
        }

        var offset = (ulong)(h.FileOffset - (h.HeaderAddress - h.LoadAddress));
        ulong fileSize;
        if (h.LoadEndAddress == 0)
        {
            fileSize = (ulong)fileLength - offset;
        }
        else if (h.LoadEndAddress <= h.LoadAddress)
        {
            throw new BootImageException(BootImageRule.BadMultibootAddresses, Fail("load_end_addr must be 0 or above load_addr"));
        }
        else
        {
            fileSize = h.LoadEndAddress - h.LoadAddress;
        }

        if (!Within(offset, fileSize, fileLength))
        {
            throw new BootImageException(
                BootImageRule.SegmentBeyondFile,
                Fail($"the text and data [0x{offset:x}, 0x{offset + fileSize:x}) lie beyond the file end 0x{fileLength:x}"));
        }

        var loadEnd = h.LoadAddress + fileSize;
        if (h.BssEndAddress != 0 && h.BssEndAddress < loadEnd)
        {
            throw new BootImageException(BootImageRule.BadMultibootAddresses, Fail($"bss_end_addr must be 0 or at least the load end 0x{loadEnd:x}"));
        }

        var memorySize = h.BssEndAddress == 0 ? fileSize : h.BssEndAddress - h.LoadAddress;
        var segment = new ElfSegment(-1, offset, h.LoadAddress, h.LoadAddress, fileSize, memorySize, 7);
        if (!segment.ContainsPhysical(h.EntryAddress))
        {
            throw new BootImageException(
                BootImageRule.EntryOutsideSegments,
                $"multiboot entry_addr 0x{h.EntryAddress:x} lies outside the {segment}: the entry must be loaded");
        }

        return segment;
    }

    private static string Describe(List<ElfSegment> segments) => string.Join(", ", segments.Select(s =>
        s.VirtualAddress == s.PhysicalAddress ? s.ToString() : $"{s}, virtual [0x{s.VirtualAddress:x}, 0x{s.VirtualEnd:x})"));

    private static bool Within(ulong offset, ulong size, int fileLength) =>
        offset <= (ulong)fileLength && size <= (ulong)fileLength - offset;

    private static ulong AlignUp(ulong value, int align) => (value + (ulong)align - 1) & ~((ulong)align - 1);

    private static ushort U16(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt16LittleEndian(s[at..]);

    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);

    private static ulong U64(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt64LittleEndian(s[at..]);
}

using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class ElfImageTests
{
    private static readonly byte[] Text = ElfBuilder.Pattern(0x100);

    internal static BootImageException Rejects(byte[] file, BootImageRule rule, params string[] mentions)
    {
        var error = Assert.Throws<BootImageException>(() => ElfImage.Parse(file))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(rule), error.Message);
            foreach (var mention in mentions)
            {
                Assert.That(error.Message, Does.Contain(mention));
            }
        });
        return error;
    }

    [Test]
    public void Elf64ExposesHeaderSegmentsAndNoOptionalEntries()
    {
        var file = ElfBuilder.Elf64(
            0x100010,
            ElfSegmentSpec.Load(0x100000, Text),
            new ElfSegmentSpec { PhysicalAddress = 0x200000, VirtualAddress = 0xFFFF_8000_0020_0000, Data = Text, MemorySize = 0x2000, Flags = 6 }).Build();

        var image = ElfImage.Parse(file);

        Assert.Multiple(() =>
        {
            Assert.That(image.Is64Bit, Is.True);
            Assert.That(image.Machine, Is.EqualTo(ElfImage.MachineX86_64));
            Assert.That(image.Entry, Is.EqualTo(0x100010));
            Assert.That(image.Segments, Is.EqualTo(new[]
            {
                new ElfSegment(0, 0x1000, 0x100000, 0x100000, 0x100, 0x100, 7),
                new ElfSegment(1, 0x2000, 0xFFFF_8000_0020_0000, 0x200000, 0x100, 0x2000, 6),
            }));
            Assert.That(image.LoadPlan, Is.EqualTo(image.Segments));
            Assert.That(image.PvhEntry, Is.Null);
            Assert.That(image.Multiboot, Is.Null);
            Assert.That(image.MultibootEntry, Is.Null);
            Assert.That(image.GetFileData(image.Segments[1]).ToArray(), Is.EqualTo(Text));
        });
    }

    [Test]
    public void Elf32I386IsAccepted()
    {
        var image = ElfImage.Parse(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, Text, 0x1000)).Build());

        Assert.Multiple(() =>
        {
            Assert.That(image.Is64Bit, Is.False);
            Assert.That(image.Machine, Is.EqualTo(ElfImage.MachineI386));
            Assert.That(image.Segments, Is.EqualTo(new[] { new ElfSegment(0, 0x1000, 0x100000, 0x100000, 0x100, 0x1000, 7) }));
        });
    }

    [Test]
    public void EntryMayBeAVirtualAddressOfASegment()
    {
        var file = ElfBuilder.Elf64(
            0xFFFF_FFFF_8100_0000,
            new ElfSegmentSpec { PhysicalAddress = 0x1000000, VirtualAddress = 0xFFFF_FFFF_8100_0000, Data = Text }).Build();

        Assert.That(ElfImage.Parse(file).Entry, Is.EqualTo(0xFFFF_FFFF_8100_0000));
    }

    [Test]
    public void LoadSegmentsWithoutMemoryAreIgnored()
    {
        var file = ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Load(0x100000, [])).Build();

        Assert.That(ElfImage.Parse(file).Segments.Select(s => s.Index), Is.EqualTo(new[] { 0 }));
    }

    [Test]
    public void PvhEntryIsReadFromTheXenNoteAmongOtherNotes()
    {
        var file = ElfBuilder.Elf64(
            0x100000,
            ElfSegmentSpec.Load(0x100000, Text),
            ElfSegmentSpec.Note(ElfBuilder.Note("GNU", 3, new byte[20]), ElfBuilder.Note("Xen", 6, [1, 2, 3]), ElfBuilder.PvhNote(0x100040))).Build();

        Assert.That(ElfImage.Parse(file).PvhEntry, Is.EqualTo(0x100040));
    }

    [Test]
    public void PvhNoteWithAZeroExtendedEightByteDescriptorIsAccepted()
    {
        var file = ElfBuilder.Elf64(
            0x100000,
            ElfSegmentSpec.Load(0x100000, Text),
            ElfSegmentSpec.Note(ElfBuilder.Note("Xen", 18, BitConverter.GetBytes(0x100080UL)))).Build();

        Assert.That(ElfImage.Parse(file).PvhEntry, Is.EqualTo(0x100080));
    }

    [Test]
    public void NotesInAnEightByteAlignedSegmentArePaddedToEightBytes()
    {
        byte[] notes = [.. ElfBuilder.Note("GNU", 3, new byte[20]), 0, 0, 0, 0, .. ElfBuilder.PvhNote(0x100020)];
        var file = ElfBuilder.Elf64(
            0x100000,
            ElfSegmentSpec.Load(0x100000, Text),
            new ElfSegmentSpec { Type = 4, Flags = 4, Data = notes, Align = 8 }).Build();

        Assert.That(ElfImage.Parse(file).PvhEntry, Is.EqualTo(0x100020));
    }

    [Test]
    public void TypeEighteenUnderAnotherNameIsNotAPvhNote()
    {
        var file = ElfBuilder.Elf64(
            0x100000,
            ElfSegmentSpec.Load(0x100000, Text),
            ElfSegmentSpec.Note(ElfBuilder.Note("Xe", 18, [1]))).Build();

        Assert.That(ElfImage.Parse(file).PvhEntry, Is.Null);
    }

    [Test]
    public void ShortFileIsTruncated() =>
        Rejects([0x7F, (byte)'E', (byte)'L', (byte)'F'], BootImageRule.Truncated, "4 bytes", "16 bytes");

    [Test]
    public void ShortHeaderIsTruncated() =>
        Rejects(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text)).Build()[..40], BootImageRule.Truncated, "40 bytes", "ELF64 header needs 64 bytes");

    [Test]
    public void ProgramHeaderTableBeyondTheFileIsTruncated() =>
        Rejects(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text)).Build()[..100], BootImageRule.Truncated, "[0x40, 0x78)", "0x64");

    [Test]
    public void BadMagicIsRejected()
    {
        var file = ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text)).Build();
        file[1] = (byte)'X';
        Rejects(file, BootImageRule.BadMagic, "0x7f 0x58 0x4c 0x46");
    }

    [Test]
    public void UnknownClassIsRejected() =>
        Rejects(new ElfBuilder { Class = 3, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedClass, "class 3");

    [Test]
    public void BigEndianIsRejected() =>
        Rejects(new ElfBuilder { Data = 2, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedEncoding, "encoding 2");

    [Test]
    public void WrongIdentVersionIsRejected() =>
        Rejects(new ElfBuilder { IdentVersion = 0, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedVersion, "version 0", "EI_VERSION");

    [Test]
    public void WrongHeaderVersionIsRejected() =>
        Rejects(new ElfBuilder { Version = 2, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedVersion, "version 2", "e_version");

    [TestCase(true, (ushort)3, "ELF64 machine 3", "EM_X86_64")]
    [TestCase(true, (ushort)183, "ELF64 machine 183", "EM_X86_64")]
    [TestCase(false, (ushort)62, "ELF32 machine 62", "EM_386")]
    public void WrongMachineForTheClassIsRejected(bool is64, ushort machine, string value, string rule) =>
        Rejects(new ElfBuilder { Is64 = is64, Machine = machine, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedMachine, value, rule);

    [TestCase((ushort)1)]
    [TestCase((ushort)3)]
    [TestCase((ushort)4)]
    public void NonExecutableTypeIsRejected(ushort type) =>
        Rejects(new ElfBuilder { Type = type, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.UnsupportedType, $"type {type}", "ET_EXEC");

    [Test]
    public void WrongProgramHeaderSizeIsRejected() =>
        Rejects(new ElfBuilder { PhentSize = 40, Entry = 0x100000, Segments = [ElfSegmentSpec.Load(0x100000, Text)] }.Build(), BootImageRule.BadProgramHeaderTable, "of 40 bytes", "56 bytes");

    [Test]
    public void NoProgramHeadersIsRejected() =>
        Rejects(ElfBuilder.Elf64(0x100000).Build(), BootImageRule.BadProgramHeaderTable, "0 entries");

    [Test]
    public void ImageWithOnlyANoteHasNothingToLoad() =>
        Rejects(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100000))).Build(), BootImageRule.NoLoadableSegment, "1 program headers");

    [Test]
    public void LoadSegmentBeyondTheFileIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, new ElfSegmentSpec { PhysicalAddress = 0x100000, Data = Text, FileSize = 0x5000, MemorySize = 0x5000 }).Build(),
            BootImageRule.SegmentBeyondFile,
            "PT_LOAD segment 0",
            "[0x1000, 0x6000)",
            "0x2000");

    [Test]
    public void NoteSegmentBeyondTheFileIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), new ElfSegmentSpec { Type = 4, Offset = 0x2800, FileSize = 0x1000 }).Build(),
            BootImageRule.SegmentBeyondFile,
            "PT_NOTE segment 1");

    [Test]
    public void FileSizeAboveMemorySizeIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text, 0x80)).Build(),
            BootImageRule.FileSizeExceedsMemorySize,
            "p_filesz 0x100",
            "p_memsz 0x80");

    [Test]
    public void SegmentWrappingTheAddressSpaceIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Load(0xFFFF_FFFF_FFFF_F000, Text, 0x2000)).Build(),
            BootImageRule.SegmentAddressOverflow,
            "PT_LOAD segment 1",
            "0xfffffffffffff000");

    [Test]
    public void OverlappingLoadSegmentsAreRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text, 0x2000), ElfSegmentSpec.Load(0x101000, Text)).Build(),
            BootImageRule.OverlappingSegments,
            "PT_LOAD segment 0 [0x100000, 0x102000)",
            "PT_LOAD segment 1 [0x101000, 0x101100)");

    [Test]
    public void AdjacentLoadSegmentsDoNotOverlap() =>
        Assert.That(
            ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x101000, Text), ElfSegmentSpec.Load(0x100000, Text, 0x1000)).Build()).Segments,
            Has.Count.EqualTo(2));

    [Test]
    public void EntryOutsideEverySegmentIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100100, ElfSegmentSpec.Load(0x100000, Text)).Build(),
            BootImageRule.EntryOutsideSegments,
            "ELF entry 0x100100",
            "[0x100000, 0x100100)");

    [Test]
    public void PvhEntryOutsideEverySegmentIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x300000))).Build(),
            BootImageRule.EntryOutsideSegments,
            "PVH entry 0x300000");

    [TestCase(2)]
    [TestCase(16)]
    public void PvhNoteOfTheWrongSizeIsRejected(int size) =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Note(ElfBuilder.Note("Xen", 18, new byte[size]))).Build(),
            BootImageRule.BadPvhNote,
            $"descsz {size}",
            "must be 4");

    [Test]
    public void PvhNoteAbove4GiBIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Note(ElfBuilder.Note("Xen", 18, BitConverter.GetBytes(0x1_0010_0000UL)))).Build(),
            BootImageRule.BadPvhNote,
            "0x100100000",
            "32-bit");

    [Test]
    public void NoteRunningPastItsSegmentIsRejected()
    {
        var note = ElfBuilder.PvhNote(0x100000);
        BitConverter.GetBytes(64u).CopyTo(note, 4);
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Note(note)).Build(),
            BootImageRule.MalformedNote,
            "descsz 64",
            "PT_NOTE segment 1");
    }

    [Test]
    public void NoteHeaderCutShortIsRejected() =>
        Rejects(
            ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100000), new byte[8])).Build(),
            BootImageRule.MalformedNote,
            "12 bytes, 8 remain");
}

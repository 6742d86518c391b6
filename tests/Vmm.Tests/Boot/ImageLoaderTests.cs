using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class ImageLoaderTests
{
    private static readonly byte[] Text = ElfBuilder.Pattern(0x300);

    [Test]
    public void SegmentsArePlacedAtTheirPhysicalAddressWithZeroedBss()
    {
        var image = ElfImage.Parse(ElfBuilder.Elf64(
            0x100000,
            ElfSegmentSpec.Load(0x100000, Text),
            new ElfSegmentSpec { PhysicalAddress = 0x180000, VirtualAddress = 0xFFFF_FFFF_8018_0000, Data = Text[..0x10], MemorySize = 0x20000 },
            ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100100))).Build());
        var memory = new FakeGuestMemory(2 << 20);

        var loaded = ImageLoader.Load(image, memory);

        Assert.Multiple(() =>
        {
            Assert.That(memory.Bytes(0x100000, Text.Length), Is.EqualTo(Text));
            Assert.That(memory.Bytes(0x100000 + (ulong)Text.Length, 1), Is.EqualTo(new byte[] { 0xCC }), "no bss after a segment without one");
            Assert.That(memory.Bytes(0x180000, 0x10), Is.EqualTo(Text[..0x10]));
            Assert.That(memory.Bytes(0x180010, 0x20000 - 0x10), Is.All.EqualTo(0), "bss zero-filled");
            Assert.That(memory.Bytes(0x1A0000, 1), Is.EqualTo(new byte[] { 0xCC }), "nothing past p_memsz");
            Assert.That(memory.Bytes(0x0, 0x1000), Is.All.EqualTo(0xCC), "low memory untouched");
            Assert.That(loaded.Segments, Is.EqualTo(image.Segments));
            Assert.That(loaded.Is64Bit, Is.True);
            Assert.That(loaded.ElfEntry, Is.EqualTo(0x100000));
            Assert.That(loaded.PvhEntry, Is.EqualTo(0x100100));
            Assert.That(loaded.MultibootEntry, Is.Null);
            Assert.That(loaded.LowestGpa, Is.EqualTo(0x100000));
            Assert.That(loaded.EndGpa, Is.EqualTo(0x1A0000));
        });
    }

    [Test]
    public void MultibootAddressFieldsDecideWhatIsLoaded()
    {
        byte[] code = [.. ElfBuilder.MultibootHeader(0x10000, addressFields: [0x200000, 0x200000, 0x200100, 0x200400, 0x200020]), .. Text];
        var image = ElfImage.Parse(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, code)).Build());
        var memory = new FakeGuestMemory(4 << 20);

        var loaded = ImageLoader.Load(image, memory);

        Assert.Multiple(() =>
        {
            Assert.That(memory.Bytes(0x200000, 0x100), Is.EqualTo(code[..0x100]));
            Assert.That(memory.Bytes(0x200100, 0x300), Is.All.EqualTo(0));
            Assert.That(memory.Bytes(0x100000, 0x10), Is.All.EqualTo(0xCC), "the ELF segment is not loaded");
            Assert.That(loaded.MultibootEntry, Is.EqualTo(0x200020));
            Assert.That(loaded.Is64Bit, Is.False);
            Assert.That((loaded.LowestGpa, loaded.EndGpa), Is.EqualTo((0x200000UL, 0x200400UL)));
        });
    }

    [Test]
    public void SegmentOutsideRamIsRejectedBeforeAnythingIsWritten()
    {
        var image = ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text), ElfSegmentSpec.Load(0x1FF000, Text, 0x2000)).Build());
        var memory = new FakeGuestMemory(2 << 20);

        var error = Assert.Throws<BootImageException>(() => ImageLoader.Load(image, memory))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OutsideGuestRam));
            Assert.That(error.Message, Does.Contain("PT_LOAD segment 1 [0x1ff000, 0x201000)").And.Contain("0x200000 bytes (2 MiB)"));
            Assert.That(memory.Writes, Is.Zero);
        });
    }

    [Test]
    public void SegmentEndingExactlyAtTheEndOfRamFits()
    {
        var image = ElfImage.Parse(ElfBuilder.Elf64(0x1FF000, ElfSegmentSpec.Load(0x1FF000, Text, 0x1000)).Build());

        Assert.That(ImageLoader.Load(image, new FakeGuestMemory(2 << 20)).EndGpa, Is.EqualTo(2UL << 20));
    }

    [Test]
    public void OverlapsReportsIntersectionWithLoadedSegments()
    {
        var loaded = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, Text)).Build()), new FakeGuestMemory(2 << 20));

        Assert.Multiple(() =>
        {
            Assert.That(loaded.Overlaps(0xFF000, 0x100000), Is.False);
            Assert.That(loaded.Overlaps(0xFF000, 0x100001), Is.True);
            Assert.That(loaded.Overlaps(0x1002FF, 0x101000), Is.True);
            Assert.That(loaded.Overlaps(0x100300, 0x101000), Is.False);
        });
    }
}

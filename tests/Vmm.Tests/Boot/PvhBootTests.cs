using Hypervisor.Vmm.Boot;
using static Hypervisor.Vmm.Tests.Boot.BootBytes;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class PvhBootTests
{
    private const ulong Ram = 64 << 20;

    private static LoadedImage LoadPvh(FakeGuestMemory memory, uint pvhEntry = 0x100020) =>
        ImageLoader.Load(
            ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, ElfBuilder.Pattern(0x100)), ElfSegmentSpec.Note(ElfBuilder.PvhNote(pvhEntry))).Build()),
            memory);

    [Test]
    public void MemoryMapLeavesOutTheHoleBelow1MiB()
    {
        Assert.Multiple(() =>
        {
            Assert.That(GuestMemoryMap.Build(Ram), Is.EqualTo(new[] { new E820Entry(0, 0x9FC00, E820Type.Ram), new E820Entry(0x100000, Ram - 0x100000, E820Type.Ram) }));
            Assert.That(GuestMemoryMap.Build(1 << 20), Is.EqualTo(new[] { new E820Entry(0, 0x9FC00, E820Type.Ram) }));
            Assert.That(GuestMemoryMap.Build(0x80000), Is.EqualTo(new[] { new E820Entry(0, 0x80000, E820Type.Ram) }));
        });
    }

    [Test]
    public void StartInfoIsVersion1WithCmdlineAndMemmap()
    {
        Assert.That(PvhBoot.StartInfo(0x20000, 0x7000, 2), Is.EqualTo(Le(
            0x336EC578u, 1u, 0u, 0u, // magic, version, flags, nr_modules
            0UL, 0x20000UL, 0UL,      // modlist_paddr, cmdline_paddr, rsdp_paddr
            0x7000UL, 2u, 0u)));      // memmap_paddr, memmap_entries, reserved
    }

    [Test]
    public void MemoryMapEntriesAreAddrSizeTypeReserved()
    {
        Assert.That(PvhBoot.MemoryMap(GuestMemoryMap.Build(Ram)), Is.EqualTo(Le(
            0UL, 0x9FC00UL, 1u, 0u,
            0x100000UL, 0x3F0_0000UL, 1u, 0u)));
    }

    [Test]
    public void GdtIsFlat32Bit()
    {
        Assert.That(PvhBoot.Gdt(), Is.EqualTo(new[] { 0UL, 0x00CF_9B00_0000_FFFFUL, 0x00CF_9300_0000_FFFFUL, 0x0000_8B00_0000_0067UL }));
    }

    [Test]
    public void SetupPlacesStartInfoMemmapAndCommandLine()
    {
        var memory = new FakeGuestMemory(Ram);

        PvhBoot.Setup(memory, LoadPvh(memory), "console=ttyS0 quiet");

        Assert.Multiple(() =>
        {
            Assert.That(memory.Bytes(0x500, 32), Is.EqualTo(Le(0UL, 0x00CF_9B00_0000_FFFFUL, 0x00CF_9300_0000_FFFFUL, 0x0000_8B00_0000_0067UL)));
            Assert.That(memory.Bytes(0x6000, 56), Is.EqualTo(PvhBoot.StartInfo(0x20000, 0x7000, 2)));
            Assert.That(memory.Bytes(0x7000, 48), Is.EqualTo(PvhBoot.MemoryMap(GuestMemoryMap.Build(Ram))));
            Assert.That(memory.Bytes(0x20000, 20), Is.EqualTo("console=ttyS0 quiet\0"u8.ToArray()));
            Assert.That(memory.Bytes(0x20014, 1), Is.EqualTo(new byte[] { 0xCC }));
        });
    }

    [Test]
    public void RegistersEnterProtectedModeWithPagingOffAndStartInfoInEbx()
    {
        var memory = new FakeGuestMemory(Ram);

        var state = PvhBoot.Setup(memory, LoadPvh(memory, 0x100020), "");

        var data = new SegmentCache(0x10, 0, 0xFFFF_FFFF, 0x3, true, 0, true, true, false, true);
        Assert.Multiple(() =>
        {
            Assert.That(state.Rip, Is.EqualTo(0x100020));
            Assert.That(state.Rbx, Is.EqualTo(0x6000));
            Assert.That(state.Cr0, Is.EqualTo(0x1), "PE only: paging off");
            Assert.That((state.Cr3, state.Cr4, state.Efer), Is.EqualTo((0UL, 0UL, 0UL)));
            Assert.That(state.Rflags, Is.EqualTo(0x2));
            Assert.That(state.Cs, Is.EqualTo(new SegmentCache(0x08, 0, 0xFFFF_FFFF, 0xB, true, 0, true, true, false, true)), "flat 32-bit code");
            Assert.That(new[] { state.Ds, state.Es, state.Fs, state.Gs, state.Ss }, Is.All.EqualTo(data));
            Assert.That(state.Tr, Is.EqualTo(new SegmentCache(0x18, 0, 0x67, 0xB, true, 0, false, false, false, false)));
            Assert.That((state.GdtBase, state.GdtLimit), Is.EqualTo((0x500UL, (ushort)31)));
            Assert.That(memory.Bytes(0x20000, 1), Is.EqualTo(new byte[] { 0 }), "an empty command line is an empty C string");
        });
    }

    [Test]
    public void ImageWithoutPvhNoteIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])).Build()), memory);

        var error = Assert.Throws<BootImageException>(() => PvhBoot.Setup(memory, image, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.MissingEntry));
            Assert.That(error.Message, Does.Contain("PHYS32_ENTRY").And.Contain("type 18"));
        });
    }

    [Test]
    public void CommandLineWithNulIsRejected()
    {
        var error = Assert.Throws<BootImageException>(() => PvhBoot.Setup(new FakeGuestMemory(Ram), 0x100000, "a\0b"))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadCommandLine));
            Assert.That(error.Message, Does.Contain("a\\0b").And.Contain("NUL"));
        });
    }

    [Test]
    public void CommandLineTooLongIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var error = Assert.Throws<BootImageException>(() => PvhBoot.Setup(memory, 0x100000, new string('x', 4096)))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadCommandLine));
            Assert.That(error.Message, Does.Contain("4096 bytes").And.Contain("at most 4095"));
            Assert.That(memory.Writes, Is.Zero);
        });
        Assert.DoesNotThrow(() => PvhBoot.Setup(memory, 0x100000, new string('x', 4095)));
    }

    [Test]
    public void RamTooSmallForTheCommandLineIsRejected()
    {
        var error = Assert.Throws<BootImageException>(() => PvhBoot.Setup(new FakeGuestMemory(0x10000), 0x1000, "x"))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OutsideGuestRam));
            Assert.That(error.Message, Does.Contain("command line [0x20000, 0x20002)").And.Contain("0x10000 bytes"));
        });
    }

    [Test]
    public void ImageOverlappingTheStartInfoIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = ImageLoader.Load(
            ElfImage.Parse(ElfBuilder.Elf32(0x6000, ElfSegmentSpec.Load(0x6000, [0xF4]), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x6000))).Build()),
            memory);

        var error = Assert.Throws<BootImageException>(() => PvhBoot.Setup(memory, image, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OverlapsBootData));
            Assert.That(error.Message, Does.Contain("hvm_start_info [0x6000, 0x6038)"));
        });
    }
}

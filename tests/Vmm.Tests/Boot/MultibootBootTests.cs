using Hypervisor.Vmm.Boot;
using static Hypervisor.Vmm.Tests.Boot.BootBytes;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class MultibootBootTests
{
    private const ulong Ram = 64 << 20;

    [Test]
    public void InfoHasMemorySizesCmdlineAndMmap()
    {
        var expected = Le(
            0x45u,          // flags: MEMORY | CMDLINE | MMAP
            639u,           // mem_lower (KiB)
            64512u,         // mem_upper: 63 MiB in KiB
            0u,             // boot_device
            0x20000u,       // cmdline
            0u, 0u,         // mods_count, mods_addr
            new byte[16],   // syms
            48u, 0x7000u,   // mmap_length, mmap_addr
            new byte[116 - 52]);

        Assert.That(MultibootBoot.Info(Ram, 0x20000, 0x7000, 48), Is.EqualTo(expected));
    }

    [Test]
    public void MemUpperIsZeroWithoutHighMemory()
    {
        var info = MultibootBoot.Info(0x80000, 0x20000, 0x7000, 24);

        Assert.That((BitConverter.ToUInt32(info, 4), BitConverter.ToUInt32(info, 8)), Is.EqualTo((512u, 0u)));
    }

    [Test]
    public void MemoryMapEntriesCarryTheirSizeField()
    {
        Assert.That(MultibootBoot.MemoryMap(GuestMemoryMap.Build(Ram)), Is.EqualTo(Le(
            20u, 0UL, 0x9FC00UL, 1u,
            20u, 0x100000UL, 0x3F0_0000UL, 1u)));
    }

    [Test]
    public void SetupEntersWithTheMagicInEaxAndTheInfoInEbx()
    {
        var memory = new FakeGuestMemory(Ram);
        byte[] code = [.. ElfBuilder.MultibootHeader(0x3), .. ElfBuilder.Pattern(0x40)];
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf32(0x10000C, ElfSegmentSpec.Load(0x100000, code)).Build()), memory);

        var state = MultibootBoot.Setup(memory, image, "mem=64M");

        Assert.Multiple(() =>
        {
            Assert.That(state.Rax, Is.EqualTo(0x2BAD_B002));
            Assert.That(state.Rbx, Is.EqualTo(0x6000));
            Assert.That(state.Rip, Is.EqualTo(0x10000C));
            Assert.That(state.Cr0, Is.EqualTo(0x1), "protected mode, paging off");
            Assert.That((state.Cr3, state.Cr4, state.Efer), Is.EqualTo((0UL, 0UL, 0UL)));
            Assert.That(state.Rflags, Is.EqualTo(0x2), "IF and VM clear");
            Assert.That(state.Cs, Is.EqualTo(new SegmentCache(0x08, 0, 0xFFFF_FFFF, 0xB, true, 0, true, true, false, true)));
            Assert.That(state.Ss, Is.EqualTo(new SegmentCache(0x10, 0, 0xFFFF_FFFF, 0x3, true, 0, true, true, false, true)));
            Assert.That(memory.Bytes(0x6000, 116), Is.EqualTo(MultibootBoot.Info(Ram, 0x20000, 0x7000, 48)));
            Assert.That(memory.Bytes(0x7000, 48), Is.EqualTo(MultibootBoot.MemoryMap(GuestMemoryMap.Build(Ram))));
            Assert.That(memory.Bytes(0x20000, 8), Is.EqualTo("mem=64M\0"u8.ToArray()));
            Assert.That(memory.Bytes(0x500, 32), Is.EqualTo(Le([.. PvhBoot.Gdt().Cast<object>()])));
        });
    }

    [Test]
    public void AddressFieldEntryIsUsed()
    {
        var memory = new FakeGuestMemory(Ram);
        byte[] code = [.. ElfBuilder.MultibootHeader(0x10000, addressFields: [0x200000, 0x200000, 0, 0x201000, 0x200020]), .. ElfBuilder.Pattern(0x40)];
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, code)).Build()), memory);

        Assert.That(MultibootBoot.Setup(memory, image, "").Rip, Is.EqualTo(0x200020));
    }

    [Test]
    public void ImageWithoutMultibootHeaderIsRejected()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])).Build()), memory);

        var error = Assert.Throws<BootImageException>(() => MultibootBoot.Setup(memory, image, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.MissingEntry));
            Assert.That(error.Message, Does.Contain("0x1BADB002").And.Contain("8192 bytes"));
        });
    }
}

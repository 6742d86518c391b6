using System.Buffers.Binary;
using Hypervisor.Vmm.Acpi;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

/// <summary>
/// The 64-bit entry of the Linux/x86 boot protocol (Documentation/x86/boot.rst, "64-bit Boot Protocol"): the zero
/// page (struct boot_params) at the offsets of arch/x86/include/uapi/asm/bootparam.h, the command line and initrd it
/// points at, and the CPU state: long mode, flat __BOOT_CS (0x10) / __BOOT_DS (0x18), interrupts off, RSI = the
/// zero page, the kernel, zero page and command line identity-mapped.
/// </summary>
public sealed class LinuxBootTests
{
    private const ulong Ram = 16 << 20;

    /// <summary>The setup header's fields the loader writes, which a byte-for-byte copy of the file's header leaves out.</summary>
    private static readonly (int Offset, int Length)[] LoaderFields =
        [(0x210, 2), (0x218, 8), (0x224, 2), (0x228, 4), (0x23C, 12), (0x250, 8)];

    private static (LoadedImage Image, FakeGuestMemory Memory) Load(BzImageBuilder builder, ulong ram = Ram)
    {
        var memory = new FakeGuestMemory(ram);
        return (BzImage.Parse(builder.Build()).Load(memory), memory);
    }

    private static byte[] ZeroPage(FakeGuestMemory memory, InitialCpuState state) => memory.Bytes(state.Rsi, 4096);

    private static uint U32(byte[] page, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(offset));

    private static ulong U64(byte[] page, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(offset));

    /// <summary>Translates <paramref name="va"/> through the 4-level tables at CR3, as the MMU would; null when not present.</summary>
    private static ulong? Translate(FakeGuestMemory memory, ulong cr3, ulong va)
    {
        var table = cr3 & ~0xFFFUL;
        for (var level = 3; level >= 0; level--)
        {
            var entry = memory.U64(table + (((va >> (12 + (9 * level))) & 0x1FF) * 8));
            if ((entry & 1) == 0)
            {
                return null;
            }

            var frame = entry & 0x000F_FFFF_FFFF_F000UL;
            if (level == 1 && (entry & 0x80) != 0)
            {
                return (frame & ~0x1F_FFFFUL) | (va & 0x1F_FFFF);
            }

            if (level == 0)
            {
                return frame | (va & 0xFFF);
            }

            table = frame;
        }

        return null;
    }

    [Test]
    public void TheZeroPageCopiesTheSetupHeaderAndFillsTheLoaderFields()
    {
        var builder = new BzImageBuilder { LoadFlags = 0xC1 };
        var (image, memory) = Load(builder);
        var acpi = new AcpiTableBuilder(1).Build();

        var state = GuestBoot.Setup(memory, image, BootProtocol.Auto, "console=ttyS0 quiet", acpi);
        var page = ZeroPage(memory, state);
        var file = builder.Build();

        Assert.Multiple(() =>
        {
            Assert.That(state.Rsi, Is.EqualTo(0x7000UL), "the zero page, in RSI");
            Assert.That(page[0x210], Is.EqualTo(0xFF), "type_of_loader: undefined");
            Assert.That(page[0x211], Is.EqualTo(0x01), "loadflags: LOADED_HIGH kept, CAN_USE_HEAP and KEEP_SEGMENTS cleared");
            Assert.That(U32(page, 0x228), Is.EqualTo(0x20000u), "cmd_line_ptr");
            Assert.That(U32(page, 0x0C8), Is.Zero, "ext_cmd_line_ptr");
            Assert.That(memory.Bytes(0x20000, 20), Is.EqualTo("console=ttyS0 quiet\0"u8.ToArray()));
            Assert.That((U32(page, 0x218), U32(page, 0x21C), U32(page, 0x0C0), U32(page, 0x0C4)), Is.EqualTo((0u, 0u, 0u, 0u)), "no initrd");
            Assert.That(U32(page, 0x23C), Is.Zero, "hardware_subarch: a normal PC");
            Assert.That(U64(page, 0x240), Is.Zero, "hardware_subarch_data");
            Assert.That(U64(page, 0x250), Is.Zero, "setup_data: no list");
            Assert.That(U64(page, 0x070), Is.EqualTo(acpi.RsdpAddress), "acpi_rsdp_addr");
            Assert.That(page[0x1EF], Is.Zero, "sentinel");
            Assert.That(page[..0x70], Is.All.Zero, "screen_info and apm_bios_info untouched");
            Assert.That(page[0x26C..0x2D0], Is.All.Zero, "after the header, before the E820 table");
            for (var i = 0x1F1; i < 0x26C; i++)
            {
                if (!LoaderFields.Any(f => i >= f.Offset && i < f.Offset + f.Length))
                {
                    Assert.That(page[i], Is.EqualTo(file[i]), $"setup header byte 0x{i:x} copied from the file");
                }
            }
        });
    }

    [Test]
    public void TheZeroPageCarriesTheMemoryMap()
    {
        var (image, memory) = Load(new BzImageBuilder());

        var page = ZeroPage(memory, LinuxBoot.Setup(memory, image, ""));

        Assert.Multiple(() =>
        {
            Assert.That(page[0x1E8], Is.EqualTo(2), "e820_entries");
            Assert.That((U64(page, 0x2D0), U64(page, 0x2D8), U32(page, 0x2E0)), Is.EqualTo((0UL, 0x9FC00UL, 1u)), "conventional RAM below the EBDA");
            Assert.That((U64(page, 0x2E4), U64(page, 0x2EC), U32(page, 0x2F4)), Is.EqualTo((0x10_0000UL, Ram - 0x10_0000, 1u)), "RAM from 1 MiB; entries are 20 bytes, packed");
            Assert.That(page[0x2F8..0x300], Is.All.Zero);
        });
    }

    [Test]
    public void TheCpuEntersLongModeAtTheKernelPlus0x200WithFlatBootSegments()
    {
        var (image, memory) = Load(new BzImageBuilder { PrefAddress = 0x40_0000 });

        var state = LinuxBoot.Setup(memory, image, "");
        var gdt = Enumerable.Range(0, 5).Select(i => memory.U64(state.GdtBase + (ulong)(i * 8))).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(state.Rip, Is.EqualTo(0x40_0200UL), "load address + 0x200");
            Assert.That(state.Rflags & 0x200, Is.Zero, "interrupts off");
            Assert.That(state.Cr0 & 0x8000_0001, Is.EqualTo(0x8000_0001UL), "PE and PG");
            Assert.That(state.Cr4 & 0x20, Is.EqualTo(0x20UL), "PAE");
            Assert.That(state.Efer & 0x500, Is.EqualTo(0x500UL), "LME and LMA");
            Assert.That(state.Cs.Selector, Is.EqualTo(0x10), "__BOOT_CS");
            Assert.That((state.Ds.Selector, state.Es.Selector, state.Ss.Selector), Is.EqualTo((0x18, 0x18, 0x18)), "__BOOT_DS");
            Assert.That(state.Cs, Is.EqualTo(SegmentCache.FromDescriptor(0x10, gdt[2])), "CS matches the GDT in memory");
            Assert.That(state.Ds, Is.EqualTo(SegmentCache.FromDescriptor(0x18, gdt[3])), "DS matches the GDT in memory");
            Assert.That((state.Cs.Base, state.Cs.Limit, state.Cs.LongMode, state.Cs.Type & 0xA), Is.EqualTo((0UL, 0xFFFF_FFFFu, true, 0xA)), "flat 64-bit execute/read code");
            Assert.That((state.Ds.Base, state.Ds.Limit, state.Ds.Type & 0x2, state.Ds.CodeOrData), Is.EqualTo((0UL, 0xFFFF_FFFFu, 0x2, true)), "flat read/write data");
            Assert.That(state.Cs.Type & 0x8, Is.EqualTo(0x8), "code");
            Assert.That(state.Ds.Type & 0x8, Is.Zero, "data");
            Assert.That(state.GdtLimit, Is.EqualTo(5 * 8 - 1));
        });
    }

    [Test]
    public void ThePageTablesIdentityMapTheFirstFourGiB()
    {
        var (image, memory) = Load(new BzImageBuilder());

        var state = LinuxBoot.Setup(memory, image, "");

        Assert.Multiple(() =>
        {
            foreach (var va in new ulong[] { 0, 0x7000, 0x20000, 0x40_0200, Ram - 1, 0x4000_0000, 0xBFFF_F000, 0xFFFF_FFFF })
            {
                Assert.That(Translate(memory, state.Cr3, va), Is.EqualTo(va), $"0x{va:x}");
            }

            Assert.That(Translate(memory, state.Cr3, 0x1_0000_0000), Is.Null, "4 GiB and above are not mapped");
        });
    }

    [Test]
    public void TheInitrdGoesToTheTopOfRamAndIntoTheZeroPage()
    {
        var (image, memory) = Load(new BzImageBuilder());
        var initrd = InitialRamDisk.FromBytes("initrd", ElfBuilder.Pattern(0x1800));

        var page = ZeroPage(memory, LinuxBoot.Setup(memory, image, "", initrd: initrd));
        var gpa = U32(page, 0x218);

        Assert.Multiple(() =>
        {
            Assert.That(gpa, Is.EqualTo((uint)(Ram - 0x2000)), "page-aligned, as high as it fits");
            Assert.That(U32(page, 0x21C), Is.EqualTo(0x1800u), "ramdisk_size");
            Assert.That((U32(page, 0x0C0), U32(page, 0x0C4)), Is.EqualTo((0u, 0u)), "ext_ramdisk_image/size: below 4 GiB");
            Assert.That(memory.Bytes(gpa, 0x1800), Is.EqualTo(initrd.Data));
        });
    }

    [Test]
    public void TheInitrdStaysBelowInitrdAddrMax()
    {
        var (image, memory) = Load(new BzImageBuilder { InitrdAddrMax = 0xBF_FFFF });
        var initrd = InitialRamDisk.FromBytes("initrd", ElfBuilder.Pattern(0x1800));

        var page = ZeroPage(memory, LinuxBoot.Setup(memory, image, "", initrd: initrd));

        Assert.Multiple(() =>
        {
            Assert.That(U32(page, 0x218), Is.EqualTo(0xBF_E000u), "its last byte at most initrd_addr_max");
            Assert.That(U32(page, 0x218) + U32(page, 0x21C) - 1, Is.LessThanOrEqualTo(0xBF_FFFFu));
        });
    }

    [Test]
    public void AKernelLoadableAbove4GIgnoresInitrdAddrMax()
    {
        var (image, memory) = Load(new BzImageBuilder { InitrdAddrMax = 0xBF_FFFF, XLoadFlags = 0x03 });
        var initrd = InitialRamDisk.FromBytes("initrd", ElfBuilder.Pattern(0x1800));

        var page = ZeroPage(memory, LinuxBoot.Setup(memory, image, "", initrd: initrd));

        Assert.That(U32(page, 0x218), Is.EqualTo((uint)(Ram - 0x2000)));
    }

    [Test]
    public void AnInitrdWithNoRoomBelowInitrdAddrMaxIsRefused()
    {
        var (image, memory) = Load(new BzImageBuilder { PrefAddress = 0x40_0000, InitSize = 0x40_0000, InitrdAddrMax = 0x80_0FFF });
        var initrd = InitialRamDisk.FromBytes("initrd", ElfBuilder.Pattern(0x1800));

        var error = Assert.Throws<BootImageException>(() => LinuxBoot.Setup(memory, image, "", initrd: initrd))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadInitrd));
            Assert.That(error.Message, Does.Contain("0x800000 (the image's end)").And.Contain("0x801000"));
        });
    }

    [Test]
    public void AHighInitrdIsSplitIntoTheExtFields()
    {
        var header = BzImage.Parse(new BzImageBuilder { XLoadFlags = 0x03 }.Build()).Header;

        var page = LinuxZeroPage.Build(header, 0x2_0002_0000, 0x1_2345_6000, 0x2_0000_1000, [], 0);

        Assert.Multiple(() =>
        {
            Assert.That((U32(page, 0x218), U32(page, 0x0C0)), Is.EqualTo((0x2345_6000u, 1u)), "ramdisk_image / ext_ramdisk_image");
            Assert.That((U32(page, 0x21C), U32(page, 0x0C4)), Is.EqualTo((0x1000u, 2u)), "ramdisk_size / ext_ramdisk_size");
            Assert.That((U32(page, 0x228), U32(page, 0x0C8)), Is.EqualTo((0x2_0000u, 2u)), "cmd_line_ptr / ext_cmd_line_ptr");
        });
    }

    [Test]
    public void ACommandLineLongerThanCmdlineSizeIsRefused()
    {
        var (image, memory) = Load(new BzImageBuilder { CmdlineSize = 8 });

        Assert.DoesNotThrow(() => LinuxBoot.Setup(memory, image, "12345678"));
        var error = Assert.Throws<BootImageException>(() => LinuxBoot.Setup(memory, image, "123456789"))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadCommandLine));
            Assert.That(error.Message, Does.Contain("9 bytes").And.Contain("at most 8"));
        });
    }

    [Test]
    public void AutoPicksLinuxForABzImage()
    {
        var (image, _) = Load(new BzImageBuilder());

        Assert.That(GuestBoot.Resolve(image, BootProtocol.Auto), Is.EqualTo(BootProtocol.Linux));
    }

    [TestCase(BootProtocol.Pvh)]
    [TestCase(BootProtocol.LongMode)]
    [TestCase(BootProtocol.Multiboot)]
    public void ABzImageRefusesTheElfProtocols(BootProtocol protocol)
    {
        var (image, memory) = Load(new BzImageBuilder());

        var error = Assert.Throws<BootImageException>(() => GuestBoot.Setup(memory, image, protocol, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.WrongProtocol));
            Assert.That(error.Message, Does.Contain($"cannot boot via {protocol}").And.Contain("Linux"));
        });
    }

    [Test]
    public void AnElfImageRefusesTheLinuxProtocol()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])).Build()), memory);

        var error = Assert.Throws<BootImageException>(() => GuestBoot.Setup(memory, image, BootProtocol.Linux, ""))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.WrongProtocol));
            Assert.That(error.Message, Does.Contain("bzImage"));
        });
    }

    [Test]
    public void TheBootDataStaysClearOfTheKernel()
    {
        var (image, memory) = Load(new BzImageBuilder { PrefAddress = 0x20_0000 });

        LinuxBoot.Setup(memory, image, "x");

        Assert.That(image.Overlaps(0x500, 0x2_1000), Is.False, "GDT, zero page, page tables and command line lie below the kernel");
    }
}

using System.Buffers.Binary;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class BzImageTests
{
    private static BootImageException Refused(BzImageBuilder builder) =>
        Assert.Throws<BootImageException>(() => BzImage.Parse(builder.Build()))!;

    [Test]
    public void ParseReadsTheSetupHeaderAtItsDocumentedOffsets()
    {
        var builder = new BzImageBuilder
        {
            SetupSects = 27,
            Version = 0x020F,
            LoadFlags = 0x21,
            InitrdAddrMax = 0x37FF_FFFF,
            KernelAlignment = 0x100_0000,
            RelocatableKernel = 0,
            XLoadFlags = 0x7F,
            CmdlineSize = 255,
            PrefAddress = 0x100_0000,
            InitSize = 0x334_5000,
        };

        var image = BzImage.Parse(builder.Build());
        var h = image.Header;

        Assert.Multiple(() =>
        {
            Assert.That(h.SetupSectors, Is.EqualTo(27));
            Assert.That(h.KernelOffset, Is.EqualTo(28 * 512), "(setup_sects + 1) × 512");
            Assert.That(h.Version, Is.EqualTo(0x020F));
            Assert.That(h.VersionText, Is.EqualTo("2.15"));
            Assert.That(h.LoadFlags, Is.EqualTo(LinuxLoadFlags.LoadedHigh | LinuxLoadFlags.QuietFlag));
            Assert.That(h.InitrdAddrMax, Is.EqualTo(0x37FF_FFFFu));
            Assert.That(h.KernelAlignment, Is.EqualTo(0x100_0000u));
            Assert.That(h.RelocatableKernel, Is.False);
            Assert.That(h.XLoadFlags, Is.EqualTo(LinuxXLoadFlags.Kernel64 | LinuxXLoadFlags.CanBeLoadedAbove4G | LinuxXLoadFlags.EfiHandover32 | LinuxXLoadFlags.EfiHandover64 | LinuxXLoadFlags.EfiKexec | LinuxXLoadFlags.FiveLevel | LinuxXLoadFlags.FiveLevelEnabled));
            Assert.That(h.CmdlineSize, Is.EqualTo(255u));
            Assert.That(h.PrefAddress, Is.EqualTo(0x100_0000UL));
            Assert.That(h.InitSize, Is.EqualTo(0x334_5000u));
            Assert.That(h.End, Is.EqualTo(0x202 + 0x6A), "0x202 + the jump's displacement byte at 0x201");
            Assert.That(h.Bytes.ToArray(), Is.EqualTo(builder.Build()[0x1F1..0x26C]));
            Assert.That(image.Kernel.ToArray(), Is.EqualTo(builder.Kernel), "syssize × 16 bytes after the setup sectors, not the trailing bytes");
            Assert.That(image.Entry64, Is.EqualTo(0x100_0200UL), "pref_address + 0x200");
        });
    }

    [Test]
    public void SetupSectsZeroMeansFour()
    {
        var builder = new BzImageBuilder { SetupSects = 0 };

        var image = BzImage.Parse(builder.Build());

        Assert.Multiple(() =>
        {
            Assert.That(image.Header.SetupSectors, Is.EqualTo(4));
            Assert.That(image.Header.KernelOffset, Is.EqualTo(5 * 512));
            Assert.That(image.Kernel.ToArray(), Is.EqualTo(builder.Kernel));
        });
    }

    [Test]
    public void SysSizeZeroTakesTheRestOfTheFile()
    {
        var builder = new BzImageBuilder { SysSize = 0, Trailing = 0 };

        Assert.That(BzImage.Parse(builder.Build()).Kernel.ToArray(), Is.EqualTo(builder.Kernel));
    }

    [Test]
    public void BootImageParseTellsElfFromBzImage()
    {
        var elf = ElfBuilder.Elf64(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])).Build();

        Assert.Multiple(() =>
        {
            Assert.That(BootImage.Parse(elf), Is.InstanceOf<ElfImage>());
            Assert.That(BootImage.Parse(new BzImageBuilder().Build()), Is.InstanceOf<BzImage>());
        });
    }

    [Test]
    public void BootImageParseRefusesAFileThatIsNeither()
    {
        var error = Assert.Throws<BootImageException>(() => BootImage.Parse(new byte[0x1000]))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadMagic));
            Assert.That(error.Message, Does.Contain("neither ELF nor a Linux bzImage").And.Contain("HdrS"));
        });
    }

    [Test]
    public void BadMagicIsRefused()
    {
        var error = Refused(new BzImageBuilder { Magic = "HdrX" });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadMagic));
            Assert.That(error.Message, Does.Contain("0x58726448").And.Contain("0x202"));
        });
    }

    [Test]
    public void BadBootFlagIsRefused()
    {
        var error = Refused(new BzImageBuilder { BootFlag = 0x1234 });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadLinuxHeader));
            Assert.That(error.Message, Does.Contain("boot_flag 0x1234").And.Contain("0xaa55"));
        });
    }

    [TestCase((ushort)0x0206)]
    [TestCase((ushort)0x020B)]
    public void ProtocolsOlderThan212AreRefused(ushort version)
    {
        var error = Refused(new BzImageBuilder { Version = version });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.UnsupportedLinuxBootProtocol));
            Assert.That(error.Message, Does.Contain($"boot protocol 2.{version & 0xFF}").And.Contain("2.12"));
        });
    }

    [Test]
    public void Version212IsAccepted()
    {
        Assert.That(BzImage.Parse(new BzImageBuilder { Version = 0x020C, JumpDisplacement = 0x66 }.Build()).Header.End, Is.EqualTo(0x268));
    }

    [TestCase((ushort)0x0000)]
    [TestCase((ushort)0x0002)]
    public void AKernelWithoutThe64BitEntryIsRefused(ushort xloadflags)
    {
        var error = Refused(new BzImageBuilder { XLoadFlags = xloadflags });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.NoLinux64BitEntry));
            Assert.That(error.Message, Does.Contain($"xloadflags 0x{xloadflags:x4}").And.Contain("XLF_KERNEL_64"));
        });
    }

    [Test]
    public void AZImageIsRefused()
    {
        var error = Refused(new BzImageBuilder { LoadFlags = 0x80 });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadLinuxHeader));
            Assert.That(error.Message, Does.Contain("loadflags 0x80").And.Contain("LOADED_HIGH"));
        });
    }

    [TestCase((byte)0x5F)]
    [TestCase((byte)0x9F)]
    public void AHeaderEndingOutsideItsRoomIsRefused(byte displacement)
    {
        var error = Refused(new BzImageBuilder { JumpDisplacement = displacement });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadLinuxHeader));
            Assert.That(error.Message, Does.Contain($"0x{0x202 + displacement:x}"));
        });
    }

    [Test]
    public void AFileEndingInsideTheSetupSectorsIsTruncated()
    {
        var file = new BzImageBuilder { SetupSects = 30, Kernel = ElfBuilder.Pattern(0x200), Trailing = 0 }.Build();

        var error = Assert.Throws<BootImageException>(() => BzImage.Parse(file.AsSpan(0, 20 * 512)))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.Truncated));
            Assert.That(error.Message, Does.Contain("setup_sects 30").And.Contain("0x3e00"));
        });
    }

    [Test]
    public void AFileEndingBeforeTheHeaderIsTruncated()
    {
        var error = Assert.Throws<BootImageException>(() => BzImage.Parse(new byte[0x100]))!;

        Assert.That(error.Rule, Is.EqualTo(BootImageRule.Truncated));
    }

    [Test]
    public void AFileEndingInsideTheKernelIsTruncated()
    {
        var error = Refused(new BzImageBuilder { SysSize = 0x200, Trailing = 0 });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.Truncated));
            Assert.That(error.Message, Does.Contain("syssize 0x200").And.Contain("8,192 bytes"));
        });
    }

    [Test]
    public void AKernelEndingBeforeItsEntryIsTruncated()
    {
        var error = Refused(new BzImageBuilder { Kernel = ElfBuilder.Pattern(0x100) });

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.Truncated));
            Assert.That(error.Message, Does.Contain("64-bit entry at offset 0x200"));
        });
    }

    [TestCase(0x40_0000UL, 0x30_0000u, TestName = "kernel_alignment not a power of two")]
    [TestCase(0x50_0000UL, 0x20_0000u, TestName = "pref_address not a multiple of kernel_alignment")]
    [TestCase(0x8_0000UL, 0x1_0000u, TestName = "pref_address below 1 MiB")]
    public void BadPlacementIsRefused(ulong pref, uint alignment)
    {
        var error = Refused(new BzImageBuilder { PrefAddress = pref, KernelAlignment = alignment });

        Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadKernelPlacement));
    }

    [Test]
    public void LoadCopiesTheKernelToPrefAddressAndReservesInitSize()
    {
        var memory = new FakeGuestMemory(16 << 20);
        var builder = new BzImageBuilder { PrefAddress = 0x40_0000, InitSize = 0x30_0000 };

        var loaded = BzImage.Parse(builder.Build()).Load(memory);

        Assert.Multiple(() =>
        {
            Assert.That(memory.Bytes(0x40_0000, builder.Kernel.Length), Is.EqualTo(builder.Kernel));
            Assert.That(memory.Bytes(0x40_0000 + (ulong)builder.Kernel.Length, 16), Is.All.EqualTo(0xCC), "the rest of init_size is not written");
            Assert.That((loaded.LowestGpa, loaded.EndGpa), Is.EqualTo((0x40_0000UL, 0x70_0000UL)), "[pref_address, pref_address + init_size)");
            Assert.That(loaded.ElfEntry, Is.EqualTo(0x40_0200UL));
            Assert.That(loaded.Is64Bit, Is.True);
            Assert.That(loaded.LinuxHeader, Is.Not.Null);
            Assert.That(loaded.Overlaps(0x6F_F000, 0x70_0000), Is.True, "boot data may not land in init_size");
            Assert.That(loaded.Segments.Single().Name, Is.EqualTo("bzImage kernel"));
        });
    }

    [Test]
    public void AKernelWhoseInitSizeDoesNotFitIsRefused()
    {
        var memory = new FakeGuestMemory(8 << 20);
        var image = BzImage.Parse(new BzImageBuilder { PrefAddress = 0x40_0000, InitSize = 0x40_0001 }.Build());

        var error = Assert.Throws<BootImageException>(() => image.Load(memory))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OutsideGuestRam));
            Assert.That(error.Message, Does.Contain("pref_address 0x400000").And.Contain("init_size 0x400001").And.Contain("0x800001"));
            Assert.That(memory.Writes, Is.Zero, "nothing is written");
        });
    }

    [Test]
    public void TheHeaderFieldsLieWhereTheProtocolSays()
    {
        var file = new BzImageBuilder { InitSize = 0x1234_5000 }.Build();

        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(LinuxSetupHeader.InitSizeOffset)), Is.EqualTo(0x1234_5000u));
            Assert.That((LinuxSetupHeader.CmdLinePtrOffset, LinuxSetupHeader.RamdiskImageOffset, LinuxSetupHeader.RamdiskSizeOffset), Is.EqualTo((0x228, 0x218, 0x21C)));
            Assert.That((LinuxSetupHeader.TypeOfLoaderOffset, LinuxSetupHeader.LoadFlagsOffset, LinuxSetupHeader.XLoadFlagsOffset), Is.EqualTo((0x210, 0x211, 0x236)));
        });
    }
}

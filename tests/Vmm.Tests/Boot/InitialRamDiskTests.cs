using System.Buffers.Binary;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class InitialRamDiskTests
{
    private const ulong Ram = 16 << 20;

    private static LoadedImage Load(ElfBuilder builder, FakeGuestMemory memory) => ImageLoader.Load(ElfImage.Parse(builder.Build()), memory);

    private static ElfBuilder Elf64WithPvh() =>
        ElfBuilder.Elf64(0x100010, ElfSegmentSpec.Load(0x100000, ElfBuilder.Pattern(0x40)), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100000)));

    private static byte[] Disk(int size) => [.. Enumerable.Range(0, size).Select(i => (byte)(i * 7 + 3))];

    [Test]
    public void PvhListsTheDiskAsItsOneModuleAtTheTopOfRam()
    {
        var memory = new FakeGuestMemory(Ram);
        var disk = Disk(10_000);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.Pvh, "", initrd: InitialRamDisk.FromBytes("disk", disk));

        var info = memory.Bytes(state.Rbx, PvhBoot.StartInfoSize);
        var modules = BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(12));
        var modlist = BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(16));
        var entry = memory.Bytes(modlist, 32);
        var paddr = BinaryPrimitives.ReadUInt64LittleEndian(entry);
        Assert.Multiple(() =>
        {
            Assert.That(modules, Is.EqualTo(1), "nr_modules");
            Assert.That(paddr % 4096, Is.Zero, "page-aligned");
            Assert.That(paddr + (ulong)disk.Length, Is.LessThanOrEqualTo(Ram).And.GreaterThan(Ram - 4096), "as high as RAM allows");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(entry.AsSpan(8)), Is.EqualTo((ulong)disk.Length), "size");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(entry.AsSpan(16)), Is.Zero, "no module command line");
            Assert.That(memory.Bytes(paddr, disk.Length), Is.EqualTo(disk));
        });
    }

    [Test]
    public void WithoutADiskTheStartInfoHasNoModules()
    {
        var memory = new FakeGuestMemory(Ram);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.Pvh, "");

        var info = memory.Bytes(state.Rbx, PvhBoot.StartInfoSize);
        Assert.That((BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(12)), BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(16))), Is.EqualTo((0u, 0ul)));
    }

    [Test]
    public void TheDirect64BitEntryGetsTheModuleThroughItsStartInfo()
    {
        var memory = new FakeGuestMemory(Ram);
        var disk = Disk(5000);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.LongMode, "", initrd: InitialRamDisk.FromBytes("disk", disk));

        var info = memory.Bytes(state.Rdi, PvhBoot.StartInfoSize);
        var entry = memory.Bytes(BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(16)), 32);
        Assert.That(memory.Bytes(BinaryPrimitives.ReadUInt64LittleEndian(entry), disk.Length), Is.EqualTo(disk));
    }

    [Test]
    public void MultibootListsTheDiskWithItsStartEndAndName()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [.. ElfBuilder.MultibootHeader(0), 0xF4])), memory);
        var disk = Disk(3000);

        var state = GuestBoot.Setup(memory, image, BootProtocol.Multiboot, "", initrd: InitialRamDisk.FromBytes("disk", disk));

        var info = memory.Bytes(state.Rbx, MultibootBoot.InfoSize);
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(info);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(20));
        var record = memory.Bytes(BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(24)), 16);
        var start = BinaryPrimitives.ReadUInt32LittleEndian(record);
        var end = BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(4));
        var name = memory.Bytes(BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(8)), 7);
        Assert.Multiple(() =>
        {
            Assert.That(flags & (1u << 3), Is.Not.Zero, "flags bit 3: mods_* valid");
            Assert.That(count, Is.EqualTo(1));
            Assert.That(end - start, Is.EqualTo((uint)disk.Length), "mod_end is one past the last byte");
            Assert.That(name, Is.EqualTo("initrd\0"u8.ToArray()));
            Assert.That(memory.Bytes(start, disk.Length), Is.EqualTo(disk));
        });
    }

    [Test]
    public void ADiskLargerThanTheRamAboveTheImageIsRefusedNamingItsSize()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(Elf64WithPvh(), memory);

        var error = Assert.Throws<BootImageException>(() => GuestBoot.Setup(memory, image, BootProtocol.Pvh, "", initrd: InitialRamDisk.FromBytes("big.cpio", new byte[15 << 20])))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.BadInitrd));
            Assert.That(error.Message, Does.Contain("big.cpio").And.Contain("15,728,640 bytes").And.Contain("-m"));
        });
    }

    [Test]
    public void AnEmptyOrMissingFileIsRefused()
    {
        var path = Path.Combine(Path.GetTempPath(), $"hv-initrd-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, []);
        try
        {
            Assert.Multiple(() =>
            {
                Assert.That(Assert.Throws<BootImageException>(() => InitialRamDisk.Load(path))!.Message, Does.Contain("is empty"));
                Assert.That(Assert.Throws<BootImageException>(() => InitialRamDisk.Load(path + ".missing"))!.Rule, Is.EqualTo(BootImageRule.BadInitrd));
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void TheCliRefusesAMissingOrEmptyInitrdInOneLine()
    {
        var image = Support.GuestImages.ImagePath("hello");
        var missing = Path.Combine(Path.GetTempPath(), $"hv-no-initrd-{Guid.NewGuid():N}");

        var absent = Support.Hv.Run("run", image, "--initrd", missing, "--plain");
        var empty = Support.Hv.Run("run", image, "--initrd", "/dev/null", "--plain");

        Assert.Multiple(() =>
        {
            Assert.That(absent.ExitCode, Is.EqualTo(1));
            Assert.That(absent.StderrLines, Has.Count.EqualTo(1));
            Assert.That(absent.Stderr, Does.Contain(missing).And.Contain("does not exist"));
            Assert.That(empty.ExitCode, Is.EqualTo(1));
            Assert.That(empty.StderrLines, Has.Count.EqualTo(1));
            Assert.That(empty.Stderr, Does.Contain("is empty"));
        });
    }
}

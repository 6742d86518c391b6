using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class MultibootHeaderTests
{
    private const uint LoadAddress = 0x100000;

    private static byte[] Image32(byte[] headerAndCode, uint entry = LoadAddress, ulong? memorySize = null) =>
        ElfBuilder.Elf32(entry, ElfSegmentSpec.Load(LoadAddress, headerAndCode, memorySize ?? 0x1000)).Build();

    private static byte[] WithCode(byte[] header) => [.. header, .. ElfBuilder.Pattern(0x100 - header.Length)];

    [Test]
    public void HeaderWithoutAddressFieldsLoadsFromTheElfHeaders()
    {
        var image = ElfImage.Parse(Image32(WithCode(ElfBuilder.MultibootHeader(0x3)), entry: LoadAddress + 0x20));

        Assert.Multiple(() =>
        {
            Assert.That(image.Multiboot, Is.EqualTo(new MultibootHeader(ElfBuilder.DataOffset, 0x3, 0, 0, 0, 0, 0)));
            Assert.That(image.Multiboot!.Value.HasAddressFields, Is.False);
            Assert.That(image.MultibootEntry, Is.EqualTo(LoadAddress + 0x20));
            Assert.That(image.LoadPlan, Is.EqualTo(image.Segments));
        });
    }

    [Test]
    public void AddressFieldsReplaceTheElfSegmentsWhenFlag16IsSet()
    {
        // header at load_addr + 0x10 (file offset 0x1010): text and data are file [0x1000, 0x1800), bss to 0x103000.
        byte[] code = [.. new byte[0x10], .. ElfBuilder.MultibootHeader(0x10002, addressFields: [0x100010, 0x100000, 0x100800, 0x103000, 0x100040]), .. ElfBuilder.Pattern(0x100)];
        var image = ElfImage.Parse(Image32(code, memorySize: 0x3000));

        Assert.Multiple(() =>
        {
            Assert.That(image.Multiboot, Is.EqualTo(new MultibootHeader(0x1010, 0x10002, 0x100010, 0x100000, 0x100800, 0x103000, 0x100040)));
            Assert.That(image.MultibootEntry, Is.EqualTo(0x100040));
            Assert.That(image.LoadPlan, Is.EqualTo(new[] { new ElfSegment(-1, 0x1000, 0x100000, 0x100000, 0x800, 0x3000, 7) }));
            Assert.That(image.LoadPlan[0].Name, Is.EqualTo("multiboot address-field segment"));
        });
    }

    [Test]
    public void ZeroLoadEndAndBssEndMeanToTheEndOfTheFileWithoutBss()
    {
        var code = WithCode(ElfBuilder.MultibootHeader(0x10000, addressFields: [0x100000, 0x100000, 0, 0, 0x100020]));
        var image = ElfImage.Parse(Image32(code));

        // The builder's file is 0x2000 bytes: one segment page after the 0x1000 of headers.
        Assert.That(image.LoadPlan, Is.EqualTo(new[] { new ElfSegment(-1, 0x1000, 0x100000, 0x100000, 0x1000, 0x1000, 7) }));
    }

    [Test]
    public void HeaderBeyondTheFirst8KiBIsIgnored()
    {
        var file = ElfBuilder.Elf32(
            LoadAddress,
            ElfSegmentSpec.Load(LoadAddress, ElfBuilder.Pattern(0x100)),
            ElfSegmentSpec.Load(0x200000, ElfBuilder.MultibootHeader(0))).Build(); // second segment's data is at 0x2000

        Assert.That(ElfImage.Parse(file).Multiboot, Is.Null);
    }

    [Test]
    public void UnalignedMagicIsIgnored()
    {
        byte[] code = [0, 0, .. ElfBuilder.MultibootHeader(0), .. new byte[0x20]];

        Assert.That(ElfImage.Parse(Image32(code)).Multiboot, Is.Null);
    }

    [Test]
    public void BadChecksumIsRejected() =>
        ElfImageTests.Rejects(
            Image32(WithCode(ElfBuilder.MultibootHeader(0x3, checksum: 0x12345678))),
            BootImageRule.BadMultibootChecksum,
            "offset 0x1000",
            "checksum 0x12345678",
            "must be 0 mod 2^32",
            "0xe4524ffb");

    [Test]
    public void UnsupportedRequirementFlagsAreRejected() =>
        ElfImageTests.Rejects(Image32(WithCode(ElfBuilder.MultibootHeader(0x9))), BootImageRule.UnsupportedMultibootFlags, "flags 0x8", "bits 0-2");

    [Test]
    public void AddressFieldsCutOffByTheFileEndAreTruncated()
    {
        var file = ElfBuilder.Elf32(LoadAddress, new ElfSegmentSpec { PhysicalAddress = LoadAddress, Offset = 0x1000, FileSize = 0x100, MemorySize = 0x100 }).Build();
        ElfBuilder.MultibootHeader(0x10000).CopyTo(file, 0x1FF4); // the header's 12 bytes end the file; its address fields would not fit

        ElfImageTests.Rejects(file, BootImageRule.Truncated, "offset 0x1ff4", "32 bytes");
    }

    [TestCase(0x100000u, 0x100010u, 0u, 0u, 0x100020u, "load_addr must be at most header_addr")]
    [TestCase(0x101100u, 0x100000u, 0u, 0u, 0x100020u, "at most the header's file offset 0x1000")]
    [TestCase(0x100000u, 0x100000u, 0x100000u, 0u, 0x100000u, "load_end_addr must be 0 or above load_addr")]
    [TestCase(0x100000u, 0x100000u, 0x100800u, 0x100400u, 0x100000u, "bss_end_addr must be 0 or at least the load end 0x100800")]
    public void InconsistentAddressFieldsAreRejected(uint header, uint load, uint loadEnd, uint bssEnd, uint entry, string rule) =>
        ElfImageTests.Rejects(
            Image32(WithCode(ElfBuilder.MultibootHeader(0x10000, addressFields: [header, load, loadEnd, bssEnd, entry]))),
            BootImageRule.BadMultibootAddresses,
            $"header_addr 0x{header:x}",
            rule);

    [Test]
    public void AddressFieldsBeyondTheFileAreRejected() =>
        ElfImageTests.Rejects(
            Image32(WithCode(ElfBuilder.MultibootHeader(0x10000, addressFields: [0x100000, 0x100000, 0x108000, 0, 0x100000]))),
            BootImageRule.SegmentBeyondFile,
            "[0x1000, 0x9000)",
            "0x2000");

    [Test]
    public void EntryAddressOutsideTheAddressFieldSegmentIsRejected() =>
        ElfImageTests.Rejects(
            Image32(WithCode(ElfBuilder.MultibootHeader(0x10000, addressFields: [0x100000, 0x100000, 0x100800, 0x101000, 0x101000]))),
            BootImageRule.EntryOutsideSegments,
            "entry_addr 0x101000",
            "[0x100000, 0x101000)");

    [Test]
    public void ElfEntryThatIsOnlyVirtualIsRejectedForMultiboot()
    {
        var file = ElfBuilder.Elf32(
            0xC0100000,
            new ElfSegmentSpec { PhysicalAddress = LoadAddress, VirtualAddress = 0xC0100000, Data = WithCode(ElfBuilder.MultibootHeader(0)) }).Build();

        ElfImageTests.Rejects(file, BootImageRule.EntryOutsideSegments, "multiboot entry 0xc0100000", "physical");
    }
}

using Hypervisor.Vmm.Boot;
using static Hypervisor.Vmm.Tests.Boot.BootBytes;

namespace Hypervisor.Vmm.Tests.Boot;

public sealed class LongModeBootTests
{
    private static LoadedImage Load64(FakeGuestMemory memory, ulong entry = 0x100000, ulong paddr = 0x100000) =>
        ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf64(entry, ElfSegmentSpec.Load(paddr, ElfBuilder.Pattern(0x200))).Build()), memory);

    [Test]
    public void GdtEntryPacksLikeFirecracker()
    {
        Assert.Multiple(() =>
        {
            Assert.That(GdtEntry.Create(0xA09B, 0, 0xFFFFF), Is.EqualTo(0x00AF_9B00_0000_FFFFUL));
            Assert.That(GdtEntry.Create(0xC093, 0, 0xFFFFF), Is.EqualTo(0x00CF_9300_0000_FFFFUL));
            Assert.That(GdtEntry.Create(0x808B, 0, 0xFFFFF), Is.EqualTo(0x008F_8B00_0000_FFFFUL));
            Assert.That(GdtEntry.Create(0x008B, 0x1234_5678, 0x67), Is.EqualTo(0x1200_8B34_5678_0067UL));
        });
    }

    [Test]
    public void SegmentCacheDecodesEveryDescriptorField()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SegmentCache.FromDescriptor(0x08, 0x00AF_9B00_0000_FFFF), Is.EqualTo(new SegmentCache(0x08, 0, 0xFFFF_FFFF, 0xB, true, 0, false, true, true, true)));
            Assert.That(SegmentCache.FromDescriptor(0x18, 0x1200_8B34_5678_0067), Is.EqualTo(new SegmentCache(0x18, 0x1234_5678, 0x67, 0xB, true, 0, false, false, false, false)));
            Assert.That(SegmentCache.FromDescriptor(0x23, 0x00CF_F300_0000_FFFF).Dpl, Is.EqualTo(3));
        });
    }

    [Test]
    public void GdtIsNullCodeDataTss()
    {
        Assert.That(LongModeBoot.Gdt(), Is.EqualTo(new[] { 0UL, 0x00AF_9B00_0000_FFFFUL, 0x00CF_9300_0000_FFFFUL, 0x008F_8B00_0000_FFFFUL }));
    }

    [Test]
    public void PageTablesIdentityMapOneGiBWith2MiBPages()
    {
        var tables = LongModeBoot.PageTables();
        var expectedPd = Enumerable.Range(0, 512).Select(i => ((ulong)i << 21) | 0x83).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(tables, Has.Length.EqualTo(0x3000));
            Assert.That(tables[..0x1000], Is.EqualTo(Le(0xA003UL, new byte[0xFF8])), "PML4: one entry → PDPT");
            Assert.That(tables[0x1000..0x2000], Is.EqualTo(Le(0xB003UL, new byte[0xFF8])), "PDPT: one entry → PD");
            Assert.That(tables[0x2000..], Is.EqualTo(Le([.. expectedPd.Cast<object>()])), "PD: 512 × 2 MiB, P|RW|PS");
            Assert.That(BitConverter.ToUInt64(tables, 0x2000 + (511 * 8)), Is.EqualTo(0x3FE0_0083UL));
        });
    }

    [Test]
    public void SetupWritesGdtIdtAndTablesAtFirecrackersAddresses()
    {
        var memory = new FakeGuestMemory(4 << 20);
        var image = Load64(memory);

        LongModeBoot.Setup(memory, image, stackTop: 0x8FF0);

        Assert.Multiple(() =>
        {
            Assert.That(memory.Bytes(0x500, 32), Is.EqualTo(new byte[]
            {
                0, 0, 0, 0, 0, 0, 0, 0,
                0xFF, 0xFF, 0, 0, 0, 0x9B, 0xAF, 0,
                0xFF, 0xFF, 0, 0, 0, 0x93, 0xCF, 0,
                0xFF, 0xFF, 0, 0, 0, 0x8B, 0x8F, 0,
            }));
            Assert.That(memory.Bytes(0x520, 8), Is.All.EqualTo(0), "empty IDT");
            Assert.That(memory.U64(0x9000), Is.EqualTo(0xA003UL));
            Assert.That(memory.U64(0xA000), Is.EqualTo(0xB003UL));
            Assert.That(memory.U64(0xB000), Is.EqualTo(0x83UL));
            Assert.That(memory.U64(0xB008), Is.EqualTo(0x20_0083UL));
            Assert.That(memory.Bytes(0x9000, 0x3000), Is.EqualTo(LongModeBoot.PageTables()));
            Assert.That(memory.Bytes(0xC000, 16), Is.All.EqualTo(0xCC), "nothing written past the PD");
        });
    }

    [Test]
    public void RegistersEnterLongModeAtTheElfEntry()
    {
        var memory = new FakeGuestMemory(4 << 20);
        var state = LongModeBoot.Setup(memory, Load64(memory, entry: 0x100040), stackTop: 0x8FF0, bootParams: 0x7000);
        var data = new SegmentCache(0x10, 0, 0xFFFF_FFFF, 0x3, true, 0, true, true, false, true);

        Assert.Multiple(() =>
        {
            Assert.That(state.Rip, Is.EqualTo(0x100040));
            Assert.That((state.Rsp, state.Rbp, state.Rsi), Is.EqualTo((0x8FF0UL, 0x8FF0UL, 0x7000UL)));
            Assert.That(state.Rflags, Is.EqualTo(0x2));
            Assert.That(state.Cr0, Is.EqualTo(0x8001_0031UL), "PE|ET|NE|WP|PG");
            Assert.That(state.Cr3, Is.EqualTo(0x9000));
            Assert.That(state.Cr4, Is.EqualTo(0x20), "PAE");
            Assert.That(state.Efer, Is.EqualTo(0x500), "LME|LMA");
            Assert.That(state.Cs, Is.EqualTo(new SegmentCache(0x08, 0, 0xFFFF_FFFF, 0xB, true, 0, false, true, true, true)));
            Assert.That(new[] { state.Ds, state.Es, state.Fs, state.Gs, state.Ss }, Is.All.EqualTo(data));
            Assert.That(state.Tr, Is.EqualTo(new SegmentCache(0x18, 0, 0xFFFF_FFFF, 0xB, true, 0, false, false, false, true)));
            Assert.That((state.GdtBase, state.GdtLimit, state.IdtBase, state.IdtLimit), Is.EqualTo((0x500UL, (ushort)31, 0x520UL, (ushort)7)));
            Assert.That((state.Rax, state.Rbx), Is.EqualTo((0UL, 0UL)));
        });
    }

    [Test]
    public void Elf32ImageCannotBeEnteredInLongMode()
    {
        var memory = new FakeGuestMemory(4 << 20);
        var image = ImageLoader.Load(ElfImage.Parse(ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [0xF4])).Build()), memory);

        var error = Assert.Throws<BootImageException>(() => LongModeBoot.Setup(memory, image, 0x8000))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.WrongProtocol));
            Assert.That(error.Message, Does.Contain("ELF32").And.Contain("0x100000"));
        });
    }

    [Test]
    public void EntryAboveTheIdentityMapIsRejected()
    {
        var error = Assert.Throws<BootImageException>(() => LongModeBoot.Setup(new FakeGuestMemory(1 << 20), 0x4000_0000, 0x8000))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.NotIdentityMapped));
            Assert.That(error.Message, Does.Contain("entry 0x40000000").And.Contain("1 GiB"));
        });
    }

    [TestCase(0x10_0001UL)]
    [TestCase(0x0UL)]
    public void StackOutsideRamIsRejected(ulong stackTop)
    {
        var error = Assert.Throws<BootImageException>(() => LongModeBoot.Setup(new FakeGuestMemory(1 << 20), 0x1000, stackTop))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.NotIdentityMapped));
            Assert.That(error.Message, Does.Contain($"stack top 0x{stackTop:x}").And.Contain("[0x1000, 0x100000]"));
        });
    }

    [Test]
    public void ImageOverlappingThePageTablesIsRejected()
    {
        var memory = new FakeGuestMemory(4 << 20);
        var image = Load64(memory, entry: 0xA000, paddr: 0xA000);

        var error = Assert.Throws<BootImageException>(() => LongModeBoot.Setup(memory, image, 0x8000))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OverlapsBootData));
            Assert.That(error.Message, Does.Contain("identity page tables [0x9000, 0xc000)").And.Contain("[0xa000, 0xa200)"));
        });
    }

    [Test]
    public void RamTooSmallForThePageTablesIsRejected()
    {
        var error = Assert.Throws<BootImageException>(() => LongModeBoot.Setup(new FakeGuestMemory(0xA000), 0x1000, 0x8000))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OutsideGuestRam));
            Assert.That(error.Message, Does.Contain("[0x9000, 0xc000)").And.Contain("0xa000 bytes"));
        });
    }
}

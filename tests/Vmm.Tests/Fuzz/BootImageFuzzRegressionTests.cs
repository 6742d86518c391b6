using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Tests.Boot;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The loader bugs the boot fuzzer found, each as the smallest image that showed it.</summary>
public sealed class BootImageFuzzRegressionTests
{
    // Fuzz seed 884 (a mutated ELF64): a PT_LOAD segment of bss only (p_filesz 0) whose p_offset lies beyond the
    // file. Parse rightly ignores the offset of a segment without file bytes, but the loader still sliced the file
    // there and threw ArgumentOutOfRangeException (OverflowException above 2 GiB).
    [TestCase(0x7FFF_FFFFUL)]
    [TestCase(ulong.MaxValue)]
    public void BssOnlySegmentWithAnOffsetBeyondTheFileLoadsAsZeros(ulong offset)
    {
        var file = ElfBuilder.Elf64(
            0x10_0000,
            ElfSegmentSpec.Load(0x10_0000, ElfBuilder.Pattern(0x100)),
            new ElfSegmentSpec { PhysicalAddress = 0x20_0000, Data = [], MemorySize = 0x2000, Offset = offset }).Build();
        var memory = new FakeGuestMemory(4 << 20);

        var loaded = ElfImage.Parse(file).Load(memory);

        Assert.Multiple(() =>
        {
            Assert.That(loaded.EndGpa, Is.EqualTo(0x20_2000));
            Assert.That(memory.Bytes(0x20_0000, 0x2000), Is.All.EqualTo(0), "the bss is zero-filled");
            Assert.That(memory.Bytes(0x10_0000, 0x100), Is.EqualTo(ElfBuilder.Pattern(0x100)));
        });
    }

    // Fuzz seed 290 (a generated ELF64): a multiboot header with address fields (flag bit 16) replaces the PT_LOAD
    // segments as what is loaded, but the PVH entry was checked against the PT_LOAD segments only, so PVH boot
    // entered at 0x100010, an address nothing was loaded at.
    [Test]
    public void PvhEntryOutsideTheMultibootAddressFieldSegmentIsRejected()
    {
        const uint Header = 0x20_0000;
        var multiboot = ElfBuilder.MultibootHeader(0x1_0000, addressFields: [Header, Header, 0, 0, Header]);
        var file = ElfBuilder.Elf32(
            0x10_0000,
            ElfSegmentSpec.Load(0x10_0000, [.. multiboot, .. ElfBuilder.Pattern(0x100)]),
            ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x10_0010))).Build();

        var e = Assert.Throws<BootImageException>(() => ElfImage.Parse(file));

        Assert.Multiple(() =>
        {
            Assert.That(e!.Rule, Is.EqualTo(BootImageRule.EntryOutsideSegments));
            Assert.That(e.Message, Does.Contain("PVH entry 0x100010").And.Contain("outside the multiboot address-field segment").And.Contain("[0x200000, 0x202000)"));
        });
    }

    [Test]
    public void PvhEntryInsideTheMultibootAddressFieldSegmentBoots()
    {
        const uint Header = 0x20_0000;
        var multiboot = ElfBuilder.MultibootHeader(0x1_0000, addressFields: [Header, Header, 0, 0, Header]);
        var file = ElfBuilder.Elf32(
            0x10_0000,
            ElfSegmentSpec.Load(0x10_0000, [.. multiboot, .. ElfBuilder.Pattern(0x100)]),
            ElfSegmentSpec.Note(ElfBuilder.PvhNote(Header + 0x20))).Build();
        var memory = new FakeGuestMemory(4 << 20);

        var state = GuestBoot.Setup(memory, ElfImage.Parse(file).Load(memory), BootProtocol.Pvh, string.Empty);

        Assert.That(state.Rip, Is.EqualTo(Header + 0x20));
    }

    // Fuzz seeds 1 050 118 and others (generated bzImages): a pref_address near 2^64 passed the header checks (at least
    // 1 MiB, a multiple of kernel_alignment), and pref_address + init_size wrapped to below the RAM size, so Load wrote
    // the kernel at 0xfffffffffff00000.
    [TestCase(0xFFFF_FFFF_FFF0_0000UL, 0x20_0000U)]
    [TestCase(0xFFFF_FFFF_8000_0000UL, uint.MaxValue)]
    public void BzImageWhosePrefAddressPlusInitSizeWrapsIsOutsideGuestRam(ulong prefAddress, uint initSize)
    {
        var file = new BzImageBuilder { PrefAddress = prefAddress, KernelAlignment = 0x10_0000, InitSize = initSize }.Build();
        var memory = new FakeGuestMemory(16 << 20);
        var image = BzImage.Parse(file);

        var e = Assert.Throws<BootImageException>(() => image.Load(memory));

        Assert.Multiple(() =>
        {
            Assert.That(e!.Rule, Is.EqualTo(BootImageRule.OutsideGuestRam));
            Assert.That(e.Message, Does.Contain($"pref_address 0x{prefAddress:x}").And.Contain($"ends at 0x1{unchecked(prefAddress + initSize):x16}"));
            Assert.That(memory.Writes, Is.Zero);
        });
    }
}

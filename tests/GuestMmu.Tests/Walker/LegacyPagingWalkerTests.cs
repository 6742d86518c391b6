using System.Buffers.Binary;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Tests.Mmu;
using Hypervisor.GuestMmu.Walker;
using static Hypervisor.GuestMmu.Walker.PageFaultErrorCode;

namespace Hypervisor.GuestMmu.Tests.Walker;

/// <summary>
/// 32-bit paging (4-byte entries, 4 MiB pages with CR4.PSE and PSE-36) and PAE paging (four PDPTEs, 8-byte
/// entries, 2 MiB pages, XD with EFER.NXE) in the two-dimensional walker: translations, A/D updates, the exact
/// #PF error codes and the reserved-bit rules of each format (Intel SDM vol. 3, 4.3 and 4.4).
/// </summary>
public unsafe class LegacyPagingWalkerTests
{
    private const ulong P = 1, W = 2, U = 4, A = 0x20, D = 0x40, PS = 0x80;
    private const ulong Nx = 1UL << 63;

    // Guest pages used as tables: the page directory (or PDPT) at page 1, further tables from page 2.
    private static readonly Gpa Directory = TestVm.GpaOf(1);
    private static readonly Gpa Table = TestVm.GpaOf(2);
    private static readonly Gpa PaeDirectory = TestVm.GpaOf(3);

    [Test]
    public void ThirtyTwoBitPagingTranslatesA4KibPageAndSetsAOnBothLevelsAndDOnlyOnTheLeaf()
    {
        using var vm = new TestVm();
        const ulong gva = 0x0040_3000; // PDE 1, PTE 3
        Write32(vm, Directory + (1 * 4), Table.Value | P | W);
        Write32(vm, Table + (3 * 4), TestVm.GpaOf(40).Value | P | W);
        Write32(vm, Table + (4 * 4), 0xDEAD_B000 | P); // the neighbour a 4-byte compare-exchange must not touch
        vm.Mm.Write(vm.HvaOf(40) + 0x12, [0x77]);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.Legacy(Directory, pae: false);

        var read = walker.Translate(ctx, new Gva(gva + 0x12), GuestAccess.Read);

        Assert.That(read.Status, Is.EqualTo(TranslationStatus.Ok), read.ToString());
        Assert.That(read.Gpa, Is.EqualTo(TestVm.GpaOf(40) + 0x12));
        Assert.That(read.PageSize, Is.EqualTo(4096UL));
        Assert.That(*read.Host, Is.EqualTo(0x77));
        Assert.That(Read32(vm, Directory + 4) & A, Is.Not.Zero, "A on the PDE");
        Assert.That(Read32(vm, Table + 12) & (A | D), Is.EqualTo(A), "A, not D, on the PTE after a read");

        Assert.That(walker.Translate(ctx, new Gva(gva), GuestAccess.Write).IsOk);
        Assert.That(Read32(vm, Table + 12) & D, Is.Not.Zero, "D on the PTE after a write");
        Assert.That(Read32(vm, Directory + 4) & D, Is.Zero, "no D on the PDE");
        Assert.That(Read32(vm, Table + 16), Is.EqualTo(0xDEAD_B000 | P), "the next 4-byte entry is untouched");
        vm.AssertCoherent();
    }

    [Test]
    public void ThirtyTwoBitPagingUsesOnlyTheLow32BitsOfTheLinearAddress()
    {
        using var vm = new TestVm();
        Write32(vm, Directory, Table.Value | P | W);
        Write32(vm, Table + (5 * 4), TestVm.GpaOf(41).Value | P | W);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.Legacy(Directory, pae: false), new Gva(0x1_0000_5008), GuestAccess.Read);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.Ok), result.ToString());
        Assert.That(result.Gpa, Is.EqualTo(TestVm.GpaOf(41) + 8));
    }

    [Test]
    public void APdeWithPsIsA4MibPageOnlyWithCr4Pse()
    {
        using var vm = new TestVm();
        const ulong gva = 0x0080_0000 + (37 * 4096) + 0x10; // PDE 2
        // PS set and the address field pointing at Table: a 4 MiB page at gpa 0 with PSE, else a table pointer.
        Write32(vm, Directory + (2 * 4), PS | P | W);
        vm.Mm.Write(vm.HvaOf(37) + 0x10, [0x11]);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var large = walker.Translate(PagingContext.Legacy(Directory, pae: false, pse: true), new Gva(gva), GuestAccess.Read);

        Assert.That(large.Status, Is.EqualTo(TranslationStatus.Ok), large.ToString());
        Assert.That(large.PageSize, Is.EqualTo(4UL << 20));
        Assert.That(large.Gpa, Is.EqualTo(TestVm.GpaOf(37) + 0x10));
        Assert.That(*large.Host, Is.EqualTo(0x11));

        // Without PSE the same PDE names the table at gpa 0: its entry 37 is page 0's bytes 148..151, all zero.
        var noPse = walker.Translate(PagingContext.Legacy(Directory, pae: false, pse: false), new Gva(gva), GuestAccess.Read);
        Assert.That(noPse.Status, Is.EqualTo(TranslationStatus.PageFault), noPse.ToString());
        Assert.That(noPse.ErrorCode, Is.EqualTo((PageFaultErrorCode)0), "a not-present PTE below the PDE");
    }

    [Test]
    public void Pse36PutsPdeBits20To13IntoPhysicalAddressBits39To32()
    {
        using var vm = new TestVm();
        Write32(vm, Directory + (3 * 4), 0x0040_0000 | (0x12UL << 13) | PS | P);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.Legacy(Directory, pae: false), new Gva(0x00C0_1234), GuestAccess.Read);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.EptMmio), "gpa 0x12_0040_1234 is beyond guest RAM");
        Assert.That(result.Gpa, Is.EqualTo(new Gpa(0x12_0040_1234)));
    }

    [Test]
    public void Bit21OfA4MibPdeIsReserved()
    {
        using var vm = new TestVm();
        Write32(vm, Directory, (1UL << 21) | PS | P | W);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.Legacy(Directory, pae: false), new Gva(0x1000), GuestAccess.Write);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(result.ErrorCode, Is.EqualTo(Present | Write | Reserved));
    }

    [TestCase(false, false, PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User)]
    [TestCase(true, false, PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User)]
    [TestCase(false, true, PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User)]
    [TestCase(true, true, PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User)]
    public void AUserWriteToAReadOnlyPageFaultsInBothFormats(bool pae, bool readOnlyAtTop, PageFaultErrorCode expected)
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = MapUserPage(vm, pae, 0x0040_0000, TestVm.GpaOf(42), topFlags: readOnlyAtTop ? P | U : P | W | U, leafFlags: readOnlyAtTop ? P | W | U : P | U);

        var result = walker.Translate(ctx with { Cpl = 3 }, new Gva(0x0040_0000), GuestAccess.Write);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(result.ErrorCode, Is.EqualTo(expected));
        Assert.That(walker.Translate(ctx with { Cpl = 3 }, new Gva(0x0040_0000), GuestAccess.Read).IsOk, "reads are allowed");
        Assert.That(walker.Translate(ctx with { Cr0 = ctx.Cr0 & ~PagingContext.Cr0Wp }, new Gva(0x0040_0000), GuestAccess.Write).IsOk,
            "a supervisor write ignores R/W without CR0.WP");
    }

    [TestCase(false, false, PageFaultErrorCode.Present)]
    [TestCase(false, true, PageFaultErrorCode.Present | PageFaultErrorCode.InstructionFetch)]
    [TestCase(true, false, PageFaultErrorCode.Present)]
    [TestCase(true, true, PageFaultErrorCode.Present | PageFaultErrorCode.InstructionFetch)]
    public void SmepBlocksSupervisorFetchesFromUserPagesAndTheIdBitNeedsSmepOrNxe(bool pae, bool smep, PageFaultErrorCode expectedWithSmep)
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = MapUserPage(vm, pae, 0x0040_0000, TestVm.GpaOf(42), topFlags: P | W | U, leafFlags: P | W | U);
        var withSmep = ctx with { Cr4 = ctx.Cr4 | PagingContext.Cr4Smep };

        var fetch = walker.Translate(smep ? withSmep : ctx, new Gva(0x0040_0000), GuestAccess.Execute);

        if (!smep)
        {
            Assert.That(fetch.IsOk, "without SMEP the supervisor may fetch from a user page");
            return;
        }

        Assert.That(fetch.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(fetch.ErrorCode, Is.EqualTo(expectedWithSmep));
    }

    [Test]
    public void SmapBlocksSupervisorDataAccessesToUserPagesUnlessAcIsSet()
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = MapUserPage(vm, pae: false, 0x0040_0000, TestVm.GpaOf(42), topFlags: P | W | U, leafFlags: P | W | U);
        var smap = ctx with { Cr4 = ctx.Cr4 | PagingContext.Cr4Smap };

        var blocked = walker.Translate(smap, new Gva(0x0040_0000), GuestAccess.Read);

        Assert.That(blocked.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(blocked.ErrorCode, Is.EqualTo(Present));
        Assert.That(walker.Translate(smap with { Rflags = smap.Rflags | PagingContext.RflagsAc }, new Gva(0x0040_0000), GuestAccess.Read).IsOk);
    }

    [Test]
    public void PaeTranslates4KibAnd2MibPagesThroughThePdpteSelectedByBits31And30()
    {
        using var vm = new TestVm();
        const ulong small = 0xC000_0000 + (1UL << 21) + (7 * 4096); // PDPTE 3, PDE 1, PTE 7
        const ulong large = 0x4000_0000 + (5UL << 21) + (37 * 4096) + 0x20; // PDPTE 1, PDE 5: a 2 MiB page at gpa 0
        var pdptAt = Directory + 0x20; // 32-byte aligned, not page aligned
        Write64(vm, pdptAt + (3 * 8), PaeDirectory.Value | P);
        Write64(vm, pdptAt + (1 * 8), TestVm.GpaOf(4).Value | P);
        Write64(vm, PaeDirectory + (1 * 8), Table.Value | P | W);
        Write64(vm, Table + (7 * 8), TestVm.GpaOf(43).Value | P | W);
        Write64(vm, TestVm.GpaOf(4) + (5 * 8), PS | P | W);
        vm.Mm.Write(vm.HvaOf(43) + 0x5, [0x43]);
        vm.Mm.Write(vm.HvaOf(37) + 0x20, [0x37]);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.Legacy(pdptAt, pae: true);

        var four = walker.Translate(ctx, new Gva(small + 5), GuestAccess.Write);
        var two = walker.Translate(ctx, new Gva(large), GuestAccess.Read);

        Assert.That(four.Status, Is.EqualTo(TranslationStatus.Ok), four.ToString());
        Assert.That(four.PageSize, Is.EqualTo(4096UL));
        Assert.That(*four.Host, Is.EqualTo(0x43));
        Assert.That(two.Status, Is.EqualTo(TranslationStatus.Ok), two.ToString());
        Assert.That(two.PageSize, Is.EqualTo(2UL << 20));
        Assert.That(two.Gpa, Is.EqualTo(TestVm.GpaOf(37) + 0x20));
        Assert.That(*two.Host, Is.EqualTo(0x37));
        Assert.That(Read64(vm, PaeDirectory + 8) & (A | D), Is.EqualTo(A), "A on the PDE");
        Assert.That(Read64(vm, Table + 56) & (A | D), Is.EqualTo(A | D), "A and D on the written PTE");
        Assert.That(Read64(vm, pdptAt + 24), Is.EqualTo(PaeDirectory.Value | P), "a PDPTE has no A bit: it is not written");
    }

    [Test]
    public void PaeHonoursXdOnlyWithNxeAndOtherwiseBit63IsReserved()
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = MapUserPage(vm, pae: true, 0x0040_0000, TestVm.GpaOf(42), topFlags: P | W, leafFlags: P | W | Nx);

        var withNxe = walker.Translate(ctx with { Efer = PagingContext.EferNxe }, new Gva(0x0040_0000), GuestAccess.Execute);
        var withoutNxe = walker.Translate(ctx, new Gva(0x0040_0000), GuestAccess.Read);

        Assert.That(withNxe.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(withNxe.ErrorCode, Is.EqualTo(Present | InstructionFetch));
        Assert.That(walker.Translate(ctx with { Efer = PagingContext.EferNxe }, new Gva(0x0040_0000), GuestAccess.Read).IsOk, "XD blocks fetches only");
        Assert.That(withoutNxe.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(withoutNxe.ErrorCode, Is.EqualTo(Present | Reserved));
    }

    [TestCase(48)]
    [TestCase(62)]
    public void PaeEntryBitsAboveMaxPhyAddrAreReserved(int bit)
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = MapUserPage(vm, pae: true, 0x0040_0000, TestVm.GpaOf(42), topFlags: P | W, leafFlags: P | W | (1UL << bit));

        var result = walker.Translate(ctx, new Gva(0x0040_0000), GuestAccess.Read);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(result.ErrorCode, Is.EqualTo(Present | Reserved));
    }

    [Test]
    public void ANotPresentPdpteFaultsAndAPdpteWithAReservedBitFaultsWithRsvdAndFailsTheLoadCheck()
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.Legacy(Directory, pae: true);
        Write64(vm, Directory + 8, PaeDirectory.Value | P);

        var missing = walker.Translate(ctx, new Gva(0x8000_0000), GuestAccess.Write);

        Assert.That(missing.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(missing.ErrorCode, Is.EqualTo(Write), "PDPTE 2 is not present");
        Assert.That(walker.PaePdptesValid(Directory.Value), Is.True, "not-present PDPTEs may hold anything");

        Write64(vm, Directory + 8, PaeDirectory.Value | P | W); // bit 1 is reserved in a PDPTE
        var reserved = walker.Translate(ctx, new Gva(0x4000_0000), GuestAccess.Read);

        Assert.That(reserved.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(reserved.ErrorCode, Is.EqualTo(Present | Reserved));
        Assert.That(walker.PaePdptesValid(Directory.Value), Is.False, "MOV to CR3 would #GP");
    }

    private static PagingContext MapUserPage(TestVm vm, bool pae, ulong gva, Gpa frame, ulong topFlags, ulong leafFlags)
    {
        if (pae)
        {
            Write64(vm, Directory + ((gva >> 30) * 8), PaeDirectory.Value | P);
            Write64(vm, PaeDirectory + (((gva >> 21) & 511) * 8), Table.Value | topFlags);
            Write64(vm, Table + (((gva >> 12) & 511) * 8), frame.Value | leafFlags);
        }
        else
        {
            Write32(vm, Directory + ((gva >> 22) * 4), Table.Value | topFlags);
            Write32(vm, Table + (((gva >> 12) & 1023) * 4), frame.Value | leafFlags);
        }

        return PagingContext.Legacy(Directory, pae);
    }

    private static void Write32(TestVm vm, Gpa gpa, ulong value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, checked((uint)value));
        vm.Mm.Write(vm.Base + gpa.Value, bytes);
    }

    private static uint Read32(TestVm vm, Gpa gpa)
    {
        Span<byte> bytes = stackalloc byte[4];
        vm.Mm.Read(vm.Base + gpa.Value, bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    private static void Write64(TestVm vm, Gpa gpa, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        vm.Mm.Write(vm.Base + gpa.Value, bytes);
    }

    private static ulong Read64(TestVm vm, Gpa gpa)
    {
        Span<byte> bytes = stackalloc byte[8];
        vm.Mm.Read(vm.Base + gpa.Value, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }
}

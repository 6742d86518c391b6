using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Tests.Mmu;
using Hypervisor.GuestMmu.Walker;
using static Hypervisor.GuestMmu.Tests.Walker.GuestPageTables;
using static Hypervisor.GuestMmu.Walker.PageFaultErrorCode;

namespace Hypervisor.GuestMmu.Tests.Walker;

public unsafe class TwoDimensionalWalkerTests
{
    private const ulong UserCode = 0x0000_0000_0040_0000;
    private const ulong Kernel = 0xFFFF_8000_0010_0000;

    [Test]
    public void PagingOffMapsGvaToGpaAndReachesTheBackingByte()
    {
        using var vm = new TestVm();
        vm.Mm.Write(vm.HvaOf(5) + 0x123, [0xAB]);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.PagingOff, new Gva(0x5123), GuestAccess.Read);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(result.Gpa, Is.EqualTo(new Gpa(0x5123)));
        Assert.That(*result.Host, Is.EqualTo(0xAB));
        Assert.That(result.PageSize, Is.EqualTo(4096UL));
    }

    [Test]
    public void FourKibPageTranslatesToTheMappedFrame()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(40).Value, P | W);
        vm.Mm.Write(vm.HvaOf(40) + 0x7F, [0x5A]);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.LongMode(tables.Cr3), new Gva(Kernel + 0x7F), GuestAccess.Read);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.Ok), result.ToString());
        Assert.That(result.Gpa, Is.EqualTo(TestVm.GpaOf(40) + 0x7F));
        Assert.That(result.PageSize, Is.EqualTo(4096UL));
        Assert.That(*result.Host, Is.EqualTo(0x5A));
        Assert.That(result.Permissions, Is.EqualTo(PagePermissions.Read | PagePermissions.Execute));
    }

    [Test]
    public void TwoMibAndOneGibPagesTranslateWithTheirOffsets()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        const ulong large2M = 0x0000_0040_0020_0000;
        const ulong large1G = 0x0000_0080_4000_0000;
        tables.Map2M(large2M, 0, P | W);
        tables.Map1G(large1G, 0, P | W);
        vm.Mm.Write(vm.HvaOf(37) + 0x10, [0x11]);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(tables.Cr3);

        var twoMeg = walker.Translate(ctx, new Gva(large2M + (37 * 4096) + 0x10), GuestAccess.Read);
        var oneGig = walker.Translate(ctx, new Gva(large1G + (37 * 4096) + 0x10), GuestAccess.Write);

        Assert.That(twoMeg.Status, Is.EqualTo(TranslationStatus.Ok), twoMeg.ToString());
        Assert.That(twoMeg.PageSize, Is.EqualTo(2UL << 20));
        Assert.That(twoMeg.Gpa, Is.EqualTo(TestVm.GpaOf(37) + 0x10));
        Assert.That(*twoMeg.Host, Is.EqualTo(0x11));
        Assert.That(oneGig.Status, Is.EqualTo(TranslationStatus.Ok), oneGig.ToString());
        Assert.That(oneGig.PageSize, Is.EqualTo(1UL << 30));
        Assert.That(oneGig.Gpa, Is.EqualTo(TestVm.GpaOf(37) + 0x10));
        Assert.That((nint)oneGig.Host, Is.EqualTo((nint)twoMeg.Host), "both large pages reach the same host byte");
        Assert.That(tables.Entry(large1G, 3) & D, Is.Not.Zero, "the 1 GiB leaf is the entry that gets D");
    }

    [Test]
    public void ReadSetsAccessedOnEveryLevelAndWriteSetsDirtyOnlyOnTheLeaf()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(40).Value, P | W);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(tables.Cr3);

        Assert.That(walker.Translate(ctx, new Gva(Kernel), GuestAccess.Read).IsOk);
        for (var level = 4; level >= 1; level--)
        {
            Assert.That(tables.Entry(Kernel, level) & A, Is.Not.Zero, $"A at level {level}");
            Assert.That(tables.Entry(Kernel, level) & D, Is.Zero, $"no D at level {level} after a read");
        }

        Assert.That(walker.Translate(ctx, new Gva(Kernel), GuestAccess.Write).IsOk);
        Assert.That(tables.Entry(Kernel, 1) & D, Is.Not.Zero, "D on the leaf after a write");
        for (var level = 4; level >= 2; level--)
        {
            Assert.That(tables.Entry(Kernel, level) & D, Is.Zero, $"no D at non-leaf level {level}");
        }

        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(40).Gfn).IsDirty, Is.True, "the EPT D bit of the written page");
        Assert.That(vm.Mmu.Ept.Read(tables.EntryGpa(Kernel, 1).Gfn).IsDirty, Is.True, "A/D updates are EPT writes to the page-table page");
        vm.AssertCoherent();
    }

    [Test]
    public void FirstWalkTakesEptViolationsForThePageTablesAndTheSecondNone()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(40).Value, P | W | A | D);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(tables.Cr3);
        for (var level = 4; level >= 1; level--)
        {
            Assert.That(vm.Mmu.Ept.Read(tables.EntryGpa(Kernel, level).Gfn).IsPresent, Is.False);
        }

        Assert.That(walker.Translate(ctx, new Gva(Kernel), GuestAccess.Read).IsOk);
        var first = walker.Stats.EptViolations;
        Assert.That(walker.Translate(ctx, new Gva(Kernel), GuestAccess.Read).IsOk);

        Assert.That(first, Is.GreaterThanOrEqualTo(5), "four page-table pages and the data page");
        Assert.That(walker.Stats.EptViolations, Is.EqualTo(first), "everything is mapped the second time");
        for (var level = 4; level >= 1; level--)
        {
            Assert.That(vm.Mmu.Ept.Read(tables.EntryGpa(Kernel, level).Gfn).IsPresent, Is.True, $"level {level} table page mapped");
        }

        Assert.That(vm.Mmu.Stats.Installs, Is.GreaterThanOrEqualTo(5));
        vm.AssertCoherent();
    }

    [TestCase(4)]
    [TestCase(3)]
    [TestCase(2)]
    [TestCase(1)]
    public void NotPresentAtEachLevelFaultsWithPresentClear(int level)
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(UserCode, TestVm.GpaOf(40).Value, P | W | U);
        tables.UpdateEntry(UserCode, level, e => e & ~P);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var supervisorRead = walker.Translate(PagingContext.LongMode(tables.Cr3), new Gva(UserCode + 8), GuestAccess.Read);
        var userWrite = walker.Translate(PagingContext.LongMode(tables.Cr3, cpl: 3), new Gva(UserCode + 8), GuestAccess.Write);

        Assert.That(supervisorRead.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(supervisorRead.ErrorCode, Is.EqualTo(None));
        Assert.That(supervisorRead.Gva, Is.EqualTo(new Gva(UserCode + 8)), "CR2");
        Assert.That(userWrite.ErrorCode, Is.EqualTo(Write | User));
        Assert.That(walker.Stats.GuestPageFaults, Is.EqualTo(2));
    }

    [Test]
    public void WritesToReadOnlyPagesFaultForUsersAndForSupervisorsOnlyWithWriteProtect()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        const ulong userRo = UserCode;
        const ulong kernelRo = Kernel;
        tables.Map4K(userRo, TestVm.GpaOf(40).Value, P | U);
        tables.Map4K(kernelRo, TestVm.GpaOf(41).Value, P);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var user = PagingContext.LongMode(tables.Cr3, cpl: 3);
        var kernelWp = PagingContext.LongMode(tables.Cr3, writeProtect: true);
        var kernelNoWp = PagingContext.LongMode(tables.Cr3, writeProtect: false);

        Assert.That(walker.Translate(user, new Gva(userRo), GuestAccess.Write).ErrorCode, Is.EqualTo(Present | Write | User));
        Assert.That(walker.Translate(kernelWp, new Gva(userRo), GuestAccess.Write).ErrorCode, Is.EqualTo(Present | Write));
        Assert.That(walker.Translate(kernelWp, new Gva(kernelRo), GuestAccess.Write).ErrorCode, Is.EqualTo(Present | Write));
        Assert.That(walker.Translate(kernelNoWp, new Gva(userRo), GuestAccess.Write).Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(walker.Translate(kernelNoWp, new Gva(kernelRo), GuestAccess.Write).Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(tables.Entry(kernelRo, 1) & D, Is.Not.Zero, "a WP=0 supervisor write dirties the read-only PTE");
        Assert.That(walker.Translate(user, new Gva(userRo), GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.Ok));
    }

    [Test]
    public void UserAccessToASupervisorPageFaultsAndUserSupervisorIsAndedAcrossLevels()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(40).Value, P | W);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U);
        tables.UpdateEntry(UserCode, 2, e => e & ~U);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var user = PagingContext.LongMode(tables.Cr3, cpl: 3);

        Assert.That(walker.Translate(user, new Gva(Kernel), GuestAccess.Read).ErrorCode, Is.EqualTo(Present | User));
        Assert.That(walker.Translate(user, new Gva(UserCode), GuestAccess.Read).ErrorCode, Is.EqualTo(Present | User), "PDE U/S=0 wins over the leaf");
        Assert.That(tables.Entry(UserCode, 1) & A, Is.Zero, "a faulting access does not set the leaf's A");
    }

    [Test]
    public void ReadWriteIsAndedAcrossLevels()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U);
        tables.UpdateEntry(UserCode, 3, e => e & ~W);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var result = walker.Translate(PagingContext.LongMode(tables.Cr3, cpl: 3), new Gva(UserCode), GuestAccess.Write);

        Assert.That(result.ErrorCode, Is.EqualTo(Present | Write | User));
    }

    [Test]
    public void NoExecuteFetchFaultsWithInstructionFetchWhenNxeIsOn()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U | NX);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        var fetch = walker.Translate(PagingContext.LongMode(tables.Cr3, cpl: 3), new Gva(UserCode), GuestAccess.Execute);
        var read = walker.Translate(PagingContext.LongMode(tables.Cr3, cpl: 3), new Gva(UserCode), GuestAccess.Read);

        Assert.That(fetch.ErrorCode, Is.EqualTo(Present | User | InstructionFetch));
        Assert.That(read.Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(read.Permissions & PagePermissions.Execute, Is.EqualTo(PagePermissions.None));
    }

    [Test]
    public void NotPresentFetchHasInstructionFetchOnlyWithNxeOrSmep()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(41).Value, P | W);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var missing = new Gva(Kernel + 0x1000);

        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, noExecute: true), missing, GuestAccess.Execute).ErrorCode, Is.EqualTo(InstructionFetch));
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, noExecute: false), missing, GuestAccess.Execute).ErrorCode, Is.EqualTo(None));
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, noExecute: false, smep: true), missing, GuestAccess.Execute).ErrorCode, Is.EqualTo(InstructionFetch));
    }

    [Test]
    public void ReservedBitsFaultWithReserved()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        const ulong nxLeaf = Kernel;
        const ulong highBits = Kernel + 0x1000;
        const ulong large2M = 0x0000_0040_0020_0000;
        tables.Map4K(nxLeaf, TestVm.GpaOf(40).Value, P | W | NX);
        tables.Map4K(highBits, TestVm.GpaOf(41).Value | (1UL << 50), P | W);
        tables.Map2M(large2M, 1UL << 13, P | W);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var nxOff = PagingContext.LongMode(tables.Cr3, noExecute: false);
        var nxOn = PagingContext.LongMode(tables.Cr3);

        Assert.That(walker.Translate(nxOff, new Gva(nxLeaf), GuestAccess.Read).ErrorCode, Is.EqualTo(Present | Reserved), "XD with EFER.NXE=0");
        Assert.That(walker.Translate(nxOn, new Gva(nxLeaf), GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(walker.Translate(nxOn, new Gva(highBits), GuestAccess.Write).ErrorCode, Is.EqualTo(Present | Write | Reserved), "bits beyond MAXPHYADDR");
        Assert.That(walker.Translate(nxOn, new Gva(large2M), GuestAccess.Read).ErrorCode, Is.EqualTo(Present | Reserved), "bit 13 of a 2 MiB PDE");

        tables.UpdateEntry(nxLeaf, 4, e => e | PS);
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, cpl: 3), new Gva(nxLeaf), GuestAccess.Read).ErrorCode,
            Is.EqualTo(Present | User | Reserved), "PS in a PML4E");
    }

    [Test]
    public void SmepBlocksSupervisorFetchesFromUserPages()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U);
        var walker = new TwoDimensionalWalker(vm.Mmu);

        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, smep: true), new Gva(UserCode), GuestAccess.Execute).ErrorCode,
            Is.EqualTo(Present | InstructionFetch));
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, smep: false), new Gva(UserCode), GuestAccess.Execute).Status,
            Is.EqualTo(TranslationStatus.Ok));
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3, smep: true, cpl: 3), new Gva(UserCode), GuestAccess.Execute).Status,
            Is.EqualTo(TranslationStatus.Ok));
    }

    [Test]
    public void SmapBlocksSupervisorDataAccessesToUserPagesUnlessAcAndNeverForImplicitAccesses()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var gva = new Gva(UserCode);
        var noAc = PagingContext.LongMode(tables.Cr3, smap: true);
        var ac = PagingContext.LongMode(tables.Cr3, smap: true, alignmentCheck: true);
        var userAc = PagingContext.LongMode(tables.Cr3, smap: true, alignmentCheck: true, cpl: 3);

        Assert.That(walker.Translate(noAc, gva, GuestAccess.Read).ErrorCode, Is.EqualTo(Present));
        Assert.That(walker.Translate(noAc, gva, GuestAccess.Write).ErrorCode, Is.EqualTo(Present | Write));
        Assert.That(walker.Translate(ac, gva, GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(walker.Translate(ac, gva, GuestAccess.Read | GuestAccess.ImplicitSupervisor).ErrorCode, Is.EqualTo(Present));
        Assert.That(walker.Translate(userAc, gva, GuestAccess.Read | GuestAccess.ImplicitSupervisor).ErrorCode, Is.EqualTo(Present),
            "an implicit access at CPL 3 is a supervisor access: no U bit");
        Assert.That(walker.Translate(userAc, gva, GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.Ok));
        Assert.That(walker.Translate(PagingContext.LongMode(tables.Cr3), gva, GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.Ok), "SMAP off");
    }

    [Test]
    public void MmioFinalGpaIsEptMmioAndPageTableInMmioIsAnError()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        const ulong mmioGpa = 0xFEE0_0000;
        tables.Map4K(Kernel, mmioGpa, P | W);
        tables.Map4K(UserCode, TestVm.GpaOf(41).Value, P | W | U);
        tables.UpdateEntry(UserCode, 2, e => (e & ~AddressMask) | 0xFED0_0000);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(tables.Cr3);

        var mmio = walker.Translate(ctx, new Gva(Kernel + 0x30), GuestAccess.Write);
        var broken = walker.Translate(ctx, new Gva(UserCode), GuestAccess.Read);

        Assert.That(mmio.Status, Is.EqualTo(TranslationStatus.EptMmio));
        Assert.That(mmio.Gpa, Is.EqualTo(new Gpa(mmioGpa + 0x30)));
        Assert.That(broken.Status, Is.EqualTo(TranslationStatus.Error));
        Assert.That(broken.Error, Is.EqualTo(WalkError.PageTableInMmio));
        Assert.That(broken.Gpa.PageAligned, Is.EqualTo(new Gpa(0xFED0_0000)));
    }

    [Test]
    public void NonCanonicalAddressesAndFiveLevelPagingAreReported()
    {
        using var vm = new TestVm();
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(TestVm.GpaOf(1));

        Assert.That(walker.Translate(ctx, new Gva(0x0000_8000_0000_0000), GuestAccess.Read).Status, Is.EqualTo(TranslationStatus.NonCanonical));
        var fiveLevel = ctx with { Cr4 = ctx.Cr4 | PagingContext.Cr4La57 };
        var result = walker.Translate(fiveLevel, new Gva(0x1000), GuestAccess.Read);

        Assert.That(fiveLevel.Mode, Is.EqualTo(PagingMode.LongMode5Level));
        Assert.That(result.Status, Is.EqualTo(TranslationStatus.Error));
        Assert.That(result.Error, Is.EqualTo(WalkError.UnsupportedPagingMode));
        Assert.That(walker.Stats.Errors, Is.EqualTo(1));
    }

    [Test]
    public void ReadOfANeverWrittenPageIsNotWritableUntilAWriteWalk()
    {
        using var vm = new TestVm();
        var tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(50).Value, P | W | A | D);
        var walker = new TwoDimensionalWalker(vm.Mmu);
        var ctx = PagingContext.LongMode(tables.Cr3);

        var read = walker.Translate(ctx, new Gva(Kernel), GuestAccess.Read);
        var write = walker.Translate(ctx, new Gva(Kernel), GuestAccess.Write);

        Assert.That(read.Permissions & PagePermissions.Write, Is.EqualTo(PagePermissions.None), "the zero page's spte is read-only though the guest PTE is writable and dirty");
        Assert.That(write.Permissions & PagePermissions.Write, Is.EqualTo(PagePermissions.Write));
        Assert.That((nint)write.Host, Is.Not.EqualTo((nint)read.Host), "the write broke copy-on-write of the zero page");
        vm.AssertCoherent();
    }
}

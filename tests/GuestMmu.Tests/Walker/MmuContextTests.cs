using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Tests.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.GuestMmu.Tests.Walker.GuestPageTables;

namespace Hypervisor.GuestMmu.Tests.Walker;

/// <summary>The vCPU-facing glue: TLB coherence with guest paging changes and with the host through shootdowns.</summary>
public unsafe class MmuContextTests
{
    private const ulong Kernel = 0xFFFF_8000_0010_0000;
    private const ulong DataPage = 40;

    [Test]
    public void SecondAccessHitsTheTlbWithoutWalking()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out _);
        vm.Mm.Write(vm.HvaOf(DataPage), [1, 2, 3, 4]);
        var buffer = new byte[4];

        Assert.That(mmu.Read(new Gva(Kernel), buffer).IsOk);
        var walks = mmu.Walker.Stats.Walks;
        Assert.That(mmu.Read(new Gva(Kernel), buffer).IsOk);

        Assert.That(buffer, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That(mmu.Walker.Stats.Walks, Is.EqualTo(walks));
        Assert.That(mmu.Tlb.Stats.Hits, Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public void WriteThenReadRoundTripsThroughGuestMemory()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out _);

        Assert.That(mmu.Write(new Gva(Kernel + 10), [9, 8, 7]).IsOk);
        var back = new byte[3];
        vm.Mm.Read(vm.HvaOf(DataPage) + 10, back);

        Assert.That(back, Is.EqualTo(new byte[] { 9, 8, 7 }));
        vm.AssertCoherent();
    }

    [Test]
    public void InvlpgDropsOnePageAndTheNextAccessSeesTheNewMapping()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        tables.Map4K(Kernel + 0x1000, TestVm.GpaOf(DataPage + 1).Value, P | W);
        vm.Mm.Write(vm.HvaOf(DataPage + 2), [0x77]);
        var one = new byte[1];
        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(mmu.Read(new Gva(Kernel + 0x1000), one).IsOk);

        tables.SetEntry(Kernel, 1, TestVm.GpaOf(DataPage + 2).Value | P | W);
        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(one[0], Is.Zero, "without INVLPG the stale translation is still used, as on hardware");
        mmu.Invlpg(new Gva(Kernel));

        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.False);
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel + 0x1000), GuestAccess.Read, out _), Is.True);
        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(one[0], Is.EqualTo(0x77));
    }

    [Test]
    public void InvlpgInsideALargePageDropsItsEntries()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        const ulong large = 0x0000_0040_0020_0000;
        tables.Map2M(large, 0, P | W);
        var one = new byte[1];
        Assert.That(mmu.Read(new Gva(large + (DataPage * 4096)), one).IsOk);
        Assert.That(mmu.Read(new Gva(large + ((DataPage + 1) * 4096)), one).IsOk);

        mmu.Invlpg(new Gva(large + 0x10_0000));

        Assert.That(mmu.Tlb.TryLookup(new Gva(large + (DataPage * 4096)), GuestAccess.Read, out _), Is.False);
        Assert.That(mmu.Tlb.TryLookup(new Gva(large + ((DataPage + 1) * 4096)), GuestAccess.Read, out _), Is.False);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cr3WriteDropsNonGlobalEntriesAndKeepsGlobalOnesOnlyWithPge(bool pge)
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables, PagingContext.LongMode(TestVm.GpaOf(1), globalPages: pge));
        const ulong global = Kernel + 0x1000;
        tables.Map4K(global, TestVm.GpaOf(DataPage + 1).Value, P | W | G);
        var one = new byte[1];
        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(mmu.Read(new Gva(global), one).IsOk);

        mmu.WriteCr3(tables.Cr3.Value);

        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.False);
        Assert.That(mmu.Tlb.TryLookup(new Gva(global), GuestAccess.Read, out _), Is.EqualTo(pge));
    }

    [Test]
    public void ChangingPagingControlsFlushesEverythingAndAcOnlySwitchesClass()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables, PagingContext.LongMode(TestVm.GpaOf(1), smap: true, alignmentCheck: true));
        const ulong user = 0x0000_0000_0040_0000;
        tables.Map4K(user, TestVm.GpaOf(DataPage + 1).Value, P | W | U | G);
        var one = new byte[1];
        Assert.That(mmu.Read(new Gva(user), one).IsOk, "SMAP with AC: allowed");

        mmu.SetContext(mmu.Context with { Rflags = 0x2 });
        var denied = mmu.Read(new Gva(user), one);
        Assert.That(denied.Status, Is.EqualTo(TranslationStatus.PageFault), "the AC=1 entry is not used without AC");
        Assert.That(denied.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present));

        mmu.SetContext(mmu.Context with { Rflags = 0x2 | PagingContext.RflagsAc });
        Assert.That(mmu.Tlb.TryLookup(new Gva(user), GuestAccess.Read, out _), Is.True, "AC changes do not flush");
        mmu.SetContext(mmu.Context with { Cr4 = mmu.Context.Cr4 & ~PagingContext.Cr4Smap });
        Assert.That(mmu.Tlb.TryLookup(new Gva(user), GuestAccess.Read, out _), Is.False, "a CR4.SMAP change flushes even global entries");
    }

    [Test]
    public void ShootdownThroughThePortDropsEverything()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        tables.Map4K(Kernel + 0x1000, TestVm.GpaOf(DataPage + 1).Value, P | W | G);
        var one = new byte[1];
        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(mmu.Read(new Gva(Kernel + 0x1000), one).IsOk);

        vm.Shootdown.FlushAll();
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.True, "not serviced yet");
        Assert.That(mmu.Port.ServiceRequests(), Is.True);

        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.False);
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel + 0x1000), GuestAccess.Read, out _), Is.False, "global entries too");
    }

    [Test]
    public void AfterMadviseDontNeedTheVcpuNoLongerReachesTheOldFrame()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out _);
        mmu.Port.EnterGuest();
        Assert.That(mmu.Write(new Gva(Kernel), [0xEE, 0xEE]).IsOk);
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out var oldHost), Is.True);
        var oldPfn = vm.Mm.PageTable.Read(vm.HvaOf(DataPage)).Pfn;

        // The host drops the page from another thread; its shootdown waits for this vCPU's acknowledgement.
        var host = Task.Run(() => vm.Mm.Madvise(vm.HvaOf(DataPage), TestVm.Page, Advice.DontNeed));
        while (!host.IsCompleted)
        {
            mmu.Port.ServiceRequests();
            Thread.Yield();
        }

        host.GetAwaiter().GetResult();
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.False, "the shootdown flushed the TLB");
        var back = new byte[2];
        Assert.That(mmu.Read(new Gva(Kernel), back).IsOk);
        mmu.Port.ExitGuest();

        Assert.That(back, Is.EqualTo(new byte[2]), "DONTNEED: the new walk maps a zero page");
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out var newHost), Is.True);
        Assert.That((nint)newHost, Is.Not.EqualTo((nint)oldHost));
        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(DataPage).Gfn).Pfn, Is.Not.EqualTo(oldPfn));
        vm.AssertCoherent();
    }

    [Test]
    public void AfterMprotectReadOnlyWritesNoLongerHitAndFaultOnTheHost()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out _);
        Assert.That(mmu.Write(new Gva(Kernel), [0x42]).IsOk);
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.True);

        vm.Mm.Mprotect(vm.HvaOf(DataPage), TestVm.Page, Protection.Read);
        mmu.Port.ServiceRequests();

        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.False);
        var write = mmu.Write(new Gva(Kernel), [0x43]);
        Assert.That(write.Status, Is.EqualTo(TranslationStatus.Error));
        Assert.That(write.Fault.Error, Is.EqualTo(WalkError.HostFault));
        var back = new byte[1];
        Assert.That(mmu.Read(new Gva(Kernel), back).IsOk);
        Assert.That(back[0], Is.EqualTo(0x42));
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.False, "a read-only spte never gives a write entry");
        vm.AssertCoherent();
    }

    [Test]
    public void ReadOnlyEptSpteBlocksTlbWritesThoughTheGuestPteIsWritableAndDirty()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        tables.SetEntry(Kernel, 1, TestVm.GpaOf(DataPage).Value | P | W | A | D);
        var one = new byte[1];

        Assert.That(mmu.Read(new Gva(Kernel), one).IsOk);
        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(DataPage).Gfn).IsWritable, Is.False, "the host's zero page is mapped read-only");
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Read, out _), Is.True);
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.False);

        Assert.That(mmu.Write(new Gva(Kernel), [5]).IsOk, "the write walks, takes the EPT violation and breaks copy-on-write");
        Assert.That(mmu.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.True);
        vm.AssertCoherent();
    }

    [Test]
    public void PageCrossingWriteIsAllOrNothing()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out _);
        var crossing = new Gva(Kernel + 0xFFE);

        var result = mmu.Write(crossing, [1, 2, 3, 4]);

        Assert.That(result.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(result.Fault.Gva, Is.EqualTo(new Gva(Kernel + 0x1000)), "CR2 is the first byte of the missing page");
        Assert.That(result.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Write));
        Assert.That(result.BytesDone, Is.Zero);
        var back = new byte[2];
        vm.Mm.Read(vm.HvaOf(DataPage) + 0xFFE, back);
        Assert.That(back, Is.EqualTo(new byte[2]), "nothing written on the first page");
    }

    [Test]
    public void PageCrossingAccessesSpanTwoFramesAndStopAtMmio()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        tables.Map4K(Kernel + 0x1000, TestVm.GpaOf(DataPage + 5).Value, P | W);
        tables.Map4K(Kernel + 0x2000, 0xFEE0_0000, P | W);

        Assert.That(mmu.Write(new Gva(Kernel + 0xFFE), [1, 2, 3, 4]).IsOk);
        var first = new byte[2];
        var second = new byte[2];
        vm.Mm.Read(vm.HvaOf(DataPage) + 0xFFE, first);
        vm.Mm.Read(vm.HvaOf(DataPage + 5), second);
        Assert.That(first, Is.EqualTo(new byte[] { 1, 2 }));
        Assert.That(second, Is.EqualTo(new byte[] { 3, 4 }));

        var read = new byte[4];
        var mmio = mmu.Read(new Gva(Kernel + 0x1FFE), read);
        Assert.That(mmio.Status, Is.EqualTo(TranslationStatus.EptMmio));
        Assert.That(mmio.BytesDone, Is.EqualTo(2));
        Assert.That(mmio.Fault.Gpa, Is.EqualTo(new Gpa(0xFEE0_0000)));
        Assert.That(read[..2], Is.EqualTo(new byte[] { 0, 0 }));
    }

    [Test]
    public void FetchNeedsAnExecutablePage()
    {
        using var vm = new TestVm();
        using var mmu = Build(vm, out var tables);
        tables.Map4K(Kernel + 0x1000, TestVm.GpaOf(DataPage + 1).Value, P | W | NX);
        var code = new byte[2];

        Assert.That(mmu.Fetch(new Gva(Kernel), code).IsOk);
        var nx = mmu.Fetch(new Gva(Kernel + 0x1000), code);
        Assert.That(nx.Status, Is.EqualTo(TranslationStatus.PageFault));
        Assert.That(nx.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.InstructionFetch));
    }

    [Test]
    public void FlushEveryVcpuEmptiesThisTlbAndMakesEveryOtherVcpuFlushBeforeItRunsGuestCodeAgain()
    {
        using var vm = new TestVm();
        using var first = Build(vm, out var tables);
        using var second = new MmuContext(vm.Mmu, vcpuId: 1, PagingContext.LongMode(tables.Cr3));
        var one = new byte[1];
        Assert.That(first.Write(new Gva(Kernel), one).IsOk);
        Assert.That(second.Write(new Gva(Kernel), one).IsOk);
        Assert.That(second.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.True);

        first.FlushEveryVcpu();

        Assert.Multiple(() =>
        {
            Assert.That(first.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.False, "this vCPU's own entry is gone");
            Assert.That(second.Port.HasPendingFlush, Is.True, "the other vCPU, outside guest mode, has a request waiting");
        });
        second.Port.EnterGuest();
        Assert.That(second.Tlb.TryLookup(new Gva(Kernel), GuestAccess.Write, out _), Is.False, "entering guest mode served it");
        second.Port.ExitGuest();
    }

    [Test]
    public void FlushEveryVcpuFromAVcpuInGuestModeWaitsForTheOthersAndNotForItself()
    {
        using var vm = new TestVm();
        using var first = Build(vm, out var tables);
        using var second = new MmuContext(vm.Mmu, vcpuId: 1, PagingContext.LongMode(tables.Cr3));
        var one = new byte[1];
        Assert.That(second.Write(new Gva(Kernel), one).IsOk);
        using var stop = new CancellationTokenSource();
        var servedAtBoundary = 0L;
        var other = new Thread(() =>
        {
            second.Port.EnterGuest();
            while (!stop.IsCancellationRequested)
            {
                if (second.Port.ServiceRequests())
                {
                    Interlocked.Increment(ref servedAtBoundary);
                }

                Thread.Yield();
            }

            second.Port.ExitGuest();
        });
        other.Start();
        SpinWait.SpinUntil(() => second.Port.Mode == Hypervisor.GuestMmu.Tlb.VcpuMode.InGuest);
        first.Port.EnterGuest();

        first.FlushEveryVcpu();

        Assert.Multiple(() =>
        {
            Assert.That(Interlocked.Read(ref servedAtBoundary), Is.EqualTo(1), "the running vCPU acknowledged at a block boundary before the call returned");
            Assert.That(first.Port.Mode, Is.EqualTo(Hypervisor.GuestMmu.Tlb.VcpuMode.InGuest), "the caller is back in guest mode");
            Assert.That(first.Port.HasPendingFlush, Is.False);
        });
        first.Port.ExitGuest();
        stop.Cancel();
        other.Join();
    }

    private static MmuContext Build(TestVm vm, out GuestPageTables tables, PagingContext? context = null)
    {
        tables = new GuestPageTables(vm);
        tables.Map4K(Kernel, TestVm.GpaOf(DataPage).Value, P | W);
        return new MmuContext(vm.Mmu, vcpuId: 0, context ?? PagingContext.LongMode(tables.Cr3));
    }
}

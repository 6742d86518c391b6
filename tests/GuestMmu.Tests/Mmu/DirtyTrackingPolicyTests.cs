using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tests.Backing;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// <see cref="DirtyTrackingPolicy"/>: under OnZap a zap hands each dirty spte's frame to the backing; under OnMap the
/// fault path marks a frame dirty when it maps it writable and zaps, aging and release report nothing. EPT dirty bits
/// and dirty logging behave the same under both, and guest data survives swap under both.
/// </summary>
public class DirtyTrackingPolicyTests
{
    private const ulong Page = Paging.PageSize;
    private static readonly Hva Base = new(0x7000_0000);

    [Test]
    public void OnMapMarksTheFrameDirtyWhenAWritableSpteIsInstalledAndTheZapReportsNothing()
    {
        using var backing = new FakeBacking(8, Base);
        backing.MakeReadOnly(6);
        using var mmu = NewMmu(backing, DirtyTrackingPolicy.OnMap);

        mmu.HandleEptViolation(new Gpa(1 * Page), EptAccess.Write);
        mmu.HandleEptViolation(new Gpa(3 * Page), EptAccess.Read); // the backing page is writable: so is the spte
        mmu.HandleEptViolation(new Gpa(6 * Page), EptAccess.Read); // read-only backing page: read-only spte
        Assert.That(backing.Dirty.Keys.Order(), Is.EqualTo(new ulong[] { 1, 3 }), "marked at map time, before any guest write");
        Assert.That(mmu.Stats.DirtyMarkedOnMap, Is.EqualTo(2));

        GuestWrite(mmu, 1 * Page, 3 * Page); // sets the EPT dirty bits
        Assert.That(mmu.Ept.Read(new Gpa(1 * Page).Gfn).IsDirty, Is.True);
        Unmap(backing, 8);

        Assert.That(mmu.Ept.CountPresentLeaves(), Is.Zero);
        Assert.That(backing.Dirty.Values, Is.All.EqualTo(1), "the zap marked nothing a second time");
        Assert.That(backing.Dirty.Keys.Order(), Is.EqualTo(new ulong[] { 1, 3 }));
        Assert.That(mmu.Stats.DirtyPropagated, Is.Zero);
        Assert.That(mmu.Ept.GetStats().DirtyLeaves, Is.Zero, "the zap did not even look at the dirty bits");
    }

    [Test]
    public void OnZapMarksOnlyWhatTheGuestWroteAndOnlyWhenTheSpteIsZapped()
    {
        using var backing = new FakeBacking(8, Base);
        using var mmu = NewMmu(backing, DirtyTrackingPolicy.OnZap);

        mmu.HandleEptViolation(new Gpa(1 * Page), EptAccess.Write);
        mmu.HandleEptViolation(new Gpa(3 * Page), EptAccess.Read);
        GuestWrite(mmu, 1 * Page);
        Assert.That(backing.Dirty, Is.Empty, "nothing is marked while the sptes are present");

        Unmap(backing, 8);

        Assert.That(backing.Dirty.Keys, Is.EqualTo(new ulong[] { 1 }), "page 3 was mapped writable but never written");
        Assert.That(mmu.Stats.DirtyPropagated, Is.EqualTo(1));
        Assert.That(mmu.Stats.DirtyMarkedOnMap, Is.Zero);
    }

    [TestCase(DirtyTrackingPolicy.OnZap, new ulong[] { 2 })]
    [TestCase(DirtyTrackingPolicy.OnMap, new ulong[] { 1, 2 })]
    public void ReleaseHandsBackDirtyFramesOnlyUnderOnZap(DirtyTrackingPolicy policy, ulong[] expected)
    {
        using var backing = new FakeBacking(4, Base);
        using var mmu = NewMmu(backing, policy);
        mmu.HandleEptViolation(new Gpa(1 * Page), EptAccess.Write);
        mmu.HandleEptViolation(new Gpa(2 * Page), EptAccess.Write);
        GuestWrite(mmu, 2 * Page);

        mmu.Release(backing);

        Assert.That(backing.Dirty.Keys.Order(), Is.EqualTo(expected));
        Assert.That(backing.Dirty.Values, Is.All.EqualTo(1));
        Assert.That(mmu.Stats.PresentSptes, Is.Zero);
        Assert.That(mmu.Stats.DirtyOrphaned, Is.Zero);
    }

    [TestCase(DirtyTrackingPolicy.OnZap, 1, 0)]
    [TestCase(DirtyTrackingPolicy.OnMap, 0, 1)]
    public void AccessTrackingAgingReportsWritableLeavesOnlyUnderOnZap(DirtyTrackingPolicy policy, int propagated, int markedOnMap)
    {
        using var vm = new TestVm(options: new TdpMmuOptions { AccessedDirtyEnabled = false, DirtyTracking = policy });
        var installed = vm.Mmu.HandleEptViolation(TestVm.GpaOf(4), EptAccess.Write);

        Assert.That(vm.Mm.Notifiers.ClearFlushYoung(vm.HvaOf(4), vm.HvaOf(5)), Is.True);

        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(4).Gfn).IsAccessTracked, Is.True);
        Assert.That(vm.Mmu.Stats.DirtyPropagated, Is.EqualTo(propagated));
        Assert.That(vm.Mmu.Stats.DirtyMarkedOnMap, Is.EqualTo(markedOnMap));
        Assert.That(vm.Host.Memory.Frame(installed.Spte.Pfn).Has(FrameFlags.Dirty), Is.True, "either way the host frame is dirty now");
        vm.AssertCoherent();
    }

    [TestCase(DirtyTrackingPolicy.OnZap, false)]
    [TestCase(DirtyTrackingPolicy.OnMap, true)]
    public void TheHostFrameIsDirtyRightAfterAWriteFaultOnlyUnderOnMap(DirtyTrackingPolicy policy, bool dirty)
    {
        using var vm = new TestVm(options: new TdpMmuOptions { DirtyTracking = policy });
        var write = vm.Mmu.HandleEptViolation(TestVm.GpaOf(9), EptAccess.Write);
        var read = vm.Mmu.HandleEptViolation(TestVm.GpaOf(10), EptAccess.Read);

        Assert.That(vm.Host.Memory.Frame(write.Spte.Pfn).Has(FrameFlags.Dirty), Is.EqualTo(dirty));
        Assert.That(read.Spte.IsWritable, Is.False, "a read of untouched anonymous memory maps the zero page read-only");
        Assert.That(vm.Host.Memory.Frame(read.Spte.Pfn).Has(FrameFlags.Dirty), Is.False, "a read-only spte marks nothing");

        vm.Mm.Mprotect(vm.HvaOf(9), Page, Protection.Read); // zaps
        Assert.That(vm.Host.Memory.Frame(write.Spte.Pfn).Has(FrameFlags.Dirty), Is.EqualTo(dirty), "nobody wrote: the zap adds nothing under either policy");
        vm.AssertCoherent();
    }

    [TestCase(DirtyTrackingPolicy.OnZap)]
    [TestCase(DirtyTrackingPolicy.OnMap)]
    public void DirtyLoggingWriteProtectsAndTheWriteRefaultSetsTheEptDirtyBitUnderBothPolicies(DirtyTrackingPolicy policy)
    {
        using var vm = new TestVm(pages: 8, options: new TdpMmuOptions { DirtyTracking = policy });
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        for (ulong page = 0; page < 4; page++)
        {
            Assert.That(cpu.Write(new Gva(page * Page), [1]).IsOk, Is.True);
        }

        cpu.Port.ExitGuest();
        var markedBefore = vm.Mmu.Stats.DirtyMarkedOnMap;
        vm.Mmu.SetMemoryRegion(0, MemslotFlags.LogDirtyPages, new Gpa(0), 8 * Page, vm.Base, new HostProcessBacking(vm.Mm));
        Assert.That(vm.Mmu.Stats.WriteProtected, Is.EqualTo(4));
        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(2).Gfn).IsWritable, Is.False);

        cpu.Port.EnterGuest();
        var wrote = cpu.Write(new Gva((2 * Page) + 5), [0x77]);
        cpu.Port.ExitGuest();

        Assert.That(wrote.IsOk, Is.True, wrote.ToString());
        var spte = vm.Mmu.Ept.Read(TestVm.GpaOf(2).Gfn);
        Assert.That(spte.IsWritable && spte.IsDirty, Is.True, $"the logged write refaulted and hardware set D: {spte}");
        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(1).Gfn).IsWritable, Is.False, "pages not written since logging began stay write-protected");
        var host = new byte[1];
        vm.Mm.Read(vm.HvaOf(2) + 5, host);
        Assert.That(host[0], Is.EqualTo(0x77));
        var expectedMarks = policy == DirtyTrackingPolicy.OnMap ? markedBefore + 1 : 0;
        Assert.That(vm.Mmu.Stats.DirtyMarkedOnMap, Is.EqualTo(expectedMarks), "the refault that restores W marks the frame again under OnMap");
        Assert.That(markedBefore, Is.EqualTo(policy == DirtyTrackingPolicy.OnMap ? 4 : 0));
        vm.AssertCoherent();
    }

    [TestCase(DirtyTrackingPolicy.OnZap)]
    [TestCase(DirtyTrackingPolicy.OnMap)]
    public void AGuestWriteToACleanSwapCachePageSurvivesTheNextPageout(DirtyTrackingPolicy policy)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 4UL << 20 },
        });
        var mm = host.CreateMm();
        const ulong pages = 8;
        var ram = mm.Mmap(pages * Page, Protection.Read | Protection.Write);
        using var mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions { DirtyTracking = policy });
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), pages * Page, ram, new HostProcessBacking(mm));
        using var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff);

        // Version 1 goes out to swap; a guest read brings it back as a clean swap-cache page; the guest then
        // writes version 2 through its spte and the host pages out again. Version 2 must come back.
        GuestAccess(cpu, write: 1);
        mm.Madvise(ram, pages * Page, Advice.PageOut);
        GuestAccess(cpu, expect: 1);
        GuestAccess(cpu, write: 2);
        mm.Madvise(ram, pages * Page, Advice.PageOut);
        GuestAccess(cpu, expect: 2);

        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThanOrEqualTo(2 * pages));
        Assert.That(mmu.Stats.DirtyPropagated + mmu.Stats.DirtyMarkedOnMap, Is.GreaterThan(0));
        Assert.That(MmuAuditor.Check(mmu), Is.Empty);
        Assert.That(HostMmAuditor.Check(host), Is.Empty);
        mmu.Dispose();
        mm.Exit();
    }

    [TestCase(DirtyTrackingPolicy.OnZap)]
    [TestCase(DirtyTrackingPolicy.OnMap)]
    public void ThePriceOfMapTimeMarkingIsSwapWritesOfPagesMappedWritableButOnlyRead(DirtyTrackingPolicy policy)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 4UL << 20 },
        });
        var mm = host.CreateMm();
        const ulong pages = 8;
        var ram = mm.Mmap(pages * Page, Protection.Read | Protection.Write);
        using var mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions { DirtyTracking = policy });
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), pages * Page, ram, new HostProcessBacking(mm));
        using var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff);
        GuestAccess(cpu, write: 1);
        mm.Madvise(ram, pages * Page, Advice.PageOut);

        // The guest only reads the pages back; each read fault maps its page as the host PTE allows.
        GuestAccess(cpu, expect: 1);
        var writable = Enumerable.Range(0, (int)pages).Count(p => mmu.Ept.Read(TestVm.GpaOf((ulong)p).Gfn).IsWritable);
        Assert.That(writable, Is.Positive, "exclusive swapped-in pages are mapped writable on a read fault");
        var before = host.Reclaim.Stats.Pswpout;
        mm.Madvise(ram, pages * Page, Advice.PageOut);
        var rewritten = host.Reclaim.Stats.Pswpout - before;
        TestContext.Out.WriteLine($"{policy}: {writable} of {pages} read-back pages mapped writable; second PAGEOUT wrote {rewritten}");

        // OnZap: the EPT D bits are clear, so the clean swap-cache copies are dropped without I/O. OnMap: every
        // page mapped writable was marked dirty at map time and is written again.
        Assert.That(rewritten, Is.EqualTo(policy == DirtyTrackingPolicy.OnMap ? writable : 0));
        GuestAccess(cpu, expect: 1);
        Assert.That(MmuAuditor.Check(mmu), Is.Empty);
        mmu.Dispose();
        mm.Exit();
    }

    [Test]
    public void AnUndefinedPolicyIsRefusedNamingTheValue()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new TdpMmu(new TlbShootdown(), new TdpMmuOptions { DirtyTracking = (DirtyTrackingPolicy)7 }))!;
        Assert.That(error.Message, Does.Contain("7").And.Contain("OnZap or OnMap"));
    }

    private static TdpMmu NewMmu(FakeBacking backing, DirtyTrackingPolicy policy)
    {
        var mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions { DirtyTracking = policy });
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), (ulong)backing.Frames * Page, backing.Base, backing);
        return mmu;
    }

    private static void GuestWrite(TdpMmu mmu, params ulong[] addresses)
    {
        using var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        foreach (var address in addresses)
        {
            Assert.That(cpu.Write(new Gva(address), [0xAB]).IsOk, Is.True);
        }

        cpu.Port.ExitGuest();
    }

    private static void Unmap(FakeBacking backing, ulong pages)
    {
        var range = new NotifierRange(backing, backing.Base, backing.Base + (pages * Page), NotifierEvent.Unmap);
        backing.Notifiers.InvalidateRangeStart(ref range);
        backing.Notifiers.InvalidateRangeEnd(ref range);
    }

    /// <summary>Writes <paramref name="write"/> into, or checks <paramref name="expect"/> in, the first byte of each of the 8 guest pages.</summary>
    private static void GuestAccess(MmuContext cpu, byte write = 0, byte expect = 0)
    {
        cpu.Port.EnterGuest();
        try
        {
            for (ulong page = 0; page < 8; page++)
            {
                var at = new Gva(page * Page);
                if (write != 0)
                {
                    Assert.That(cpu.Write(at, [(byte)(write + page)]).IsOk, Is.True);
                }
                else
                {
                    var buffer = new byte[1];
                    Assert.That(cpu.Read(at, buffer).IsOk, Is.True);
                    Assert.That(buffer[0], Is.EqualTo((byte)(expect + page)), $"page {page}");
                }
            }
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }
}

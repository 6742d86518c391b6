using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.Notifier;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.GuestMmu.Tests.Mmu.TestVm;

namespace Hypervisor.GuestMmu.Tests.Mmu;

public class TdpMmuTests
{
    /// <summary>A failure guard only: no test waits it out when it passes.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(10);

    [Test]
    public void ReadFaultMapsTheHostsZeroPageReadOnlyAndWriteFaultBreaksIt()
    {
        using var vm = new TestVm();

        var read = vm.Mmu.HandleEptViolation(GpaOf(3), EptAccess.Read);
        Assert.That(read.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(read.Spte.Pfn, Is.EqualTo(vm.Host.ZeroPfn));
        Assert.That(read.Spte.IsWritable, Is.False, "the host maps the zero page read-only, so the spte is too");

        var write = vm.Mmu.HandleEptViolation(GpaOf(3), EptAccess.Write);
        Assert.That(write.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(write.Spte.IsWritable, Is.True);
        Assert.That(write.Spte.Pfn, Is.EqualTo(vm.Mm.PageTable.Read(vm.HvaOf(3)).Pfn));
        Assert.That(write.Spte.Pfn, Is.Not.EqualTo(vm.Host.ZeroPfn));
        vm.AssertCoherent();
    }

    [Test]
    public void SecondFaultOnAMappedPageFindsItMapped()
    {
        using var vm = new TestVm();
        vm.Mmu.HandleEptViolation(GpaOf(1), EptAccess.Write);

        var again = vm.Mmu.HandleEptViolation(GpaOf(1), EptAccess.Read);

        Assert.That(again.Outcome, Is.EqualTo(EptFaultOutcome.AlreadyMapped));
        Assert.That(vm.Mmu.Stats.Installs, Is.EqualTo(1));
    }

    [Test]
    public void AddressesOutsideMemslotsAndWritesToReadOnlySlotsExitAsMmio()
    {
        using var vm = new TestVm();
        var roBacking = vm.Mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        vm.Mmu.SetMemoryRegion(1, MemslotFlags.ReadOnly, new Gpa(1UL << 30), 4 * Page, roBacking, new HostProcessBacking(vm.Mm));

        Assert.That(vm.Mmu.HandleEptViolation(new Gpa(1UL << 32), EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.Mmio));
        Assert.That(vm.Mmu.HandleEptViolation(new Gpa(1UL << 30), EptAccess.Write).Outcome, Is.EqualTo(EptFaultOutcome.Mmio));
        var read = vm.Mmu.HandleEptViolation(new Gpa(1UL << 30), EptAccess.Read);
        Assert.That(read.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(read.Spte.IsWritable, Is.False, "a read-only slot never gets a writable spte");
        Assert.That(vm.Mmu.Stats.MmioExits, Is.EqualTo(2));
    }

    [Test]
    public void HostHoleIsAHostFault()
    {
        using var vm = new TestVm();
        vm.Mm.Munmap(vm.HvaOf(2), Page);

        Assert.That(vm.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.HostFault));
    }

    [Test]
    public void MunmapZapsAndARefaultSeesNewContent()
    {
        using var vm = new TestVm();
        vm.Mm.Write(vm.HvaOf(5), [1, 2, 3, 4]);
        var first = vm.Mmu.HandleEptViolation(GpaOf(5), EptAccess.Read);
        Assert.That(vm.Host.Memory.FrameBytes(first.Spte.Pfn)[0], Is.EqualTo(1));

        vm.Mm.Madvise(vm.HvaOf(5), Page, Advice.DontNeed);
        Assert.That(vm.Mmu.Ept.Read(GpaOf(5).Gfn).IsPresent, Is.False, "the notifier start zapped the spte");
        vm.AssertCoherent();

        var refault = vm.Mmu.HandleEptViolation(GpaOf(5), EptAccess.Read);
        Assert.That(refault.Spte.Pfn, Is.EqualTo(vm.Host.ZeroPfn), "after MADV_DONTNEED the page reads as zeroes");
        Assert.That(vm.Mmu.Stats.Zapped, Is.EqualTo(1));
        Assert.That(vm.Mmu.Stats.TlbFlushes, Is.EqualTo(1));
    }

    [Test]
    public void MprotectReadOnlyZapsAndTheRefaultIsReadOnly()
    {
        using var vm = new TestVm();
        vm.Mmu.HandleEptViolation(GpaOf(7), EptAccess.Write);
        vm.Mm.Mprotect(vm.HvaOf(7), Page, Protection.Read);

        Assert.That(vm.Mmu.Ept.Read(GpaOf(7).Gfn).IsPresent, Is.False);
        var refault = vm.Mmu.HandleEptViolation(GpaOf(7), EptAccess.Read);
        Assert.That(refault.Spte.IsWritable, Is.False);
        Assert.That(vm.Mmu.HandleEptViolation(GpaOf(7), EptAccess.Write).Outcome, Is.EqualTo(EptFaultOutcome.HostFault),
            "the host refuses the write: the guest gets no writable mapping");
        vm.AssertCoherent();
    }

    [Test]
    public void ZappedDirtySptesMarkTheHostFrameDirty()
    {
        using var vm = new TestVm();
        var write = vm.Mmu.HandleEptViolation(GpaOf(9), EptAccess.Write);
        Assert.That(vm.Mmu.Ept.TrySetAccessedDirty(GpaOf(9).Gfn, write.Spte, dirty: true), Is.True, "the guest writes: hardware sets the EPT dirty bit");

        vm.Mm.Mprotect(vm.HvaOf(9), Page, Protection.Read);

        Assert.That(vm.Host.Memory.Frame(write.Spte.Pfn).Has(Hypervisor.HostMm.Frames.FrameFlags.Dirty), Is.True);
        Assert.That(vm.Mmu.Stats.DirtyPropagated, Is.EqualTo(1));
    }

    [Test]
    public void AgingAnswersFromTheAccessedBit()
    {
        using var vm = new TestVm();
        vm.Mmu.HandleEptViolation(GpaOf(4), EptAccess.Write);

        Assert.That(vm.Mm.Notifiers.TestYoung(vm.HvaOf(4)), Is.True, "installed sptes start young");
        Assert.That(vm.Mm.Notifiers.ClearFlushYoung(vm.HvaOf(4), vm.HvaOf(5)), Is.True);
        Assert.That(vm.Mm.Notifiers.ClearFlushYoung(vm.HvaOf(4), vm.HvaOf(5)), Is.False, "the first call cleared it");
        Assert.That(vm.Mm.Notifiers.TestYoung(vm.HvaOf(4)), Is.False);
        Assert.That(vm.Mmu.Ept.Read(GpaOf(4).Gfn).IsPresent, Is.True, "with A/D bits aging does not unmap");
    }

    [Test]
    public void ClearFlushYoungBitmapSetsTheYoungPagesBitsAndFlushesOnceForTheRange()
    {
        using var vm = new TestVm();
        foreach (var page in new ulong[] { 1, 3, 6 })
        {
            vm.Mmu.HandleEptViolation(GpaOf(page), EptAccess.Write);
        }

        var flushes = vm.Mmu.Stats.TlbFlushes;
        var young = new ulong[1];
        Assert.That(vm.Mm.Notifiers.ClearFlushYoungBitmap(vm.HvaOf(0), vm.HvaOf(8), young), Is.True);

        Assert.That(young[0], Is.EqualTo((1UL << 1) | (1UL << 3) | (1UL << 6)), "installed sptes start young; unmapped pages stay old");
        Assert.That(vm.Mmu.Stats.TlbFlushes - flushes, Is.EqualTo(1), "one remote flush for the whole range");
        Assert.That(vm.Mmu.Ept.Read(GpaOf(3).Gfn).IsAccessed, Is.False, "the accessed bits were cleared");
        Assert.That(vm.Mmu.Ept.Read(GpaOf(3).Gfn).IsPresent, Is.True, "with A/D bits aging does not unmap");

        Assert.That(vm.Mm.Notifiers.ClearFlushYoungBitmap(vm.HvaOf(0), vm.HvaOf(8), young), Is.False, "the first call cleared them");
        Assert.That(young[0], Is.Zero);
        Assert.That(vm.Mmu.Stats.TlbFlushes - flushes, Is.EqualTo(1), "nothing young: no flush");
    }

    [Test]
    public void ClearFlushYoungBitmapWithoutAccessedBitsAgesPageByPage()
    {
        using var vm = new TestVm(options: new TdpMmuOptions { AccessedDirtyEnabled = false });
        vm.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Write);
        var young = new ulong[1];

        Assert.That(vm.Mm.Notifiers.ClearFlushYoungBitmap(vm.HvaOf(0), vm.HvaOf(4), young), Is.True);
        Assert.That(young[0], Is.EqualTo(1UL << 2));
        Assert.That(vm.Mmu.Ept.Read(GpaOf(2).Gfn).IsAccessTracked, Is.True);
    }

    [Test]
    public void AgingWithoutAccessedBitsAccessTracksAndTheNextFaultRestores()
    {
        using var vm = new TestVm(options: new TdpMmuOptions { AccessedDirtyEnabled = false });
        var installed = vm.Mmu.HandleEptViolation(GpaOf(4), EptAccess.Write);

        Assert.That(vm.Mm.Notifiers.ClearFlushYoung(vm.HvaOf(4), vm.HvaOf(5)), Is.True);
        var tracked = vm.Mmu.Ept.Read(GpaOf(4).Gfn);
        Assert.That(tracked.IsAccessTracked, Is.True);

        var restored = vm.Mmu.HandleEptViolation(GpaOf(4), EptAccess.Read);
        Assert.That(restored.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(restored.Spte.Pfn, Is.EqualTo(installed.Spte.Pfn));
        Assert.That(restored.Spte.IsAccessTracked, Is.False);
    }

    [Test]
    public void ExitReleasesEverythingAndRefusesNewFaults()
    {
        using var vm = new TestVm();
        for (ulong page = 0; page < 8; page++)
        {
            vm.Mmu.HandleEptViolation(GpaOf(page), EptAccess.Write);
        }

        vm.Mm.Exit();

        Assert.That(vm.Mmu.IsReleased, Is.True);
        Assert.That(vm.Mmu.Stats.PresentSptes, Is.Zero);
        Assert.That(() => vm.Mmu.HandleEptViolation(GpaOf(0), EptAccess.Read),
            Throws.TypeOf<GuestMmuReleasedException>().With.Message.Contains("released"));
    }

    [Test]
    public void ChangePteInsideStartEndNeverFindsAnSpte()
    {
        using var vm = new TestVm(legacyChangePte: true);
        vm.Mm.Write(vm.HvaOf(6), [42]);
        vm.Mm.Mprotect(vm.HvaOf(6), Page, Protection.Read);
        vm.Mm.Mprotect(vm.HvaOf(6), Page, Protection.Read | Protection.Write);
        var shared = vm.Mm.GetUserPages(vm.HvaOf(6), write: false); // a second reference forces a copy
        vm.Mmu.HandleEptViolation(GpaOf(6), EptAccess.Read);

        vm.Mm.HandleFault(vm.HvaOf(6), FaultAccess.Write); // COW: start zaps, then change_pte, then end
        vm.Mm.ReleasePage(shared.Pfn);

        Assert.That(vm.Mmu.Stats.ChangePteMisses, Is.EqualTo(1));
        Assert.That(vm.Mmu.Stats.ChangePteHits, Is.Zero, "the spte was zapped by the enclosing start: why Linux 6.10 removed change_pte");
        vm.AssertCoherent();
    }

    [Test]
    public void FaultDuringAnInvalidationRetriesUntilItEndsThenMapsTheNewFrame()
    {
        using var vm = new TestVm();
        vm.Mm.Write(vm.HvaOf(2), [7]);
        var gate = new GateNotifier();
        vm.Mm.Notifiers.Register(gate);
        // Registered after the gate, this MMU is called before it (newest first): when the gate blocks, the
        // MMU's start has already counted the invalidation and zapped.
        using var second = new TestVmMmuOnSameBacking(vm);
        // Dedicated threads: a blocked thread-pool thread could delay the fault past the gate and hide the race.
        var blocker = Task.Factory.StartNew(() => vm.Mm.Madvise(vm.HvaOf(2), Page, Advice.DontNeed), TaskCreationOptions.LongRunning);
        Assert.That(gate.Entered.Wait(TimeSpan.FromSeconds(10)), Is.True);

        var fault = Task.Factory.StartNew(() => second.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read), TaskCreationOptions.LongRunning);
        Assert.That(SpinWait.SpinUntil(() => second.Mmu.Stats.Retries > 0, TimeSpan.FromSeconds(10)), Is.True, "the fault retries while the invalidation is in progress");
        Assert.That(fault.IsCompleted, Is.False, "it cannot finish before the invalidation ends");

        gate.Open.Set();
        Assert.That(Task.WaitAll([blocker, fault], TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(fault.Result.Retries, Is.GreaterThan(0));
        Assert.That(fault.Result.Spte.Pfn, Is.EqualTo(vm.Host.ZeroPfn), "it maps what the host maps after the invalidation");
        Assert.That(MmuAuditor.Check(second.Mmu), Is.Empty);
    }

    [Test]
    public void FaultDuringAHeldInvalidationWaitsForItsEndInsteadOfSpinning()
    {
        using var held = new HeldInvalidation(waitSlice: TimeSpan.FromMinutes(5)); // only end's wake-up can finish the wait within the guards
        var fault = LongRunning(() => held.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read));
        Assert.That(SpinWait.SpinUntil(() => held.Mmu.Stats.InvalidationWaits > 0, Guard), Is.True, "the fault waits for the invalidation over its gfn");
        Thread.Sleep(200); // the hold being measured, not synchronisation: a spinning fault retried hundreds of times here
        Assert.That(fault.IsCompleted, Is.False, "it cannot finish before the invalidation ends");
        Assert.That(held.Mmu.Stats.Retries, Is.EqualTo(1), "one retry, then asleep for the whole hold");

        held.Open();
        Assert.That(Task.WaitAll([held.Blocker, fault], Guard), Is.True, "end wakes the waiter");
        Assert.That(fault.Result.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(fault.Result.Retries, Is.InRange(1, 3));
        Assert.That(held.Mmu.Stats.Retries, Is.InRange(1, 3));
        Assert.That(held.Mmu.Stats.InvalidationWaits, Is.InRange(1, fault.Result.Retries), "every wait is also a retry");
        Assert.That(fault.Result.Spte.Pfn, Is.EqualTo(held.Vm.Host.ZeroPfn), "it maps what the host maps after the invalidation");
        Assert.That(MmuAuditor.Check(held.Mmu), Is.Empty);
    }

    [Test]
    public void FaultOutsideTheInvalidatedRangeIsNotDelayedByIt()
    {
        using var held = new HeldInvalidation();
        Assert.That(held.Mmu.Stats.InProgress, Is.EqualTo(1));

        var fault = LongRunning(() => held.Mmu.HandleEptViolation(GpaOf(10), EptAccess.Write));
        Assert.That(fault.Wait(Guard), Is.True, "page 10 lies outside the in-progress range [2, 3)");
        Assert.That(held.Blocker.IsCompleted, Is.False, "the invalidation was still held when the fault completed");
        Assert.That(held.Mmu.Stats.InProgress, Is.EqualTo(1));
        Assert.That(fault.Result.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(fault.Result.Retries, Is.Zero);
        Assert.That(held.Mmu.Stats.InvalidationWaits, Is.Zero);

        held.Open();
        Assert.That(held.Blocker.Wait(Guard), Is.True);
        Assert.That(MmuAuditor.Check(held.Mmu), Is.Empty);
    }

    [Test]
    public void ReleaseWakesAFaultWaitingForAnInvalidationWhichThenFailsAsReleased()
    {
        using var held = new HeldInvalidation(waitSlice: TimeSpan.FromMinutes(5)); // only release's wake-up can finish the wait within the guard
        var fault = LongRunning(() => held.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read));
        Assert.That(SpinWait.SpinUntil(() => held.Mmu.Stats.InvalidationWaits > 0, Guard), Is.True);

        held.Mmu.Release(held.Vm.Mm);

        Assert.That(SpinWait.SpinUntil(() => fault.IsCompleted, Guard), Is.True, "release wakes the waiter");
        Assert.That(held.Blocker.IsCompleted, Is.False, "while the invalidation is still held");
        Assert.That(fault.Exception?.InnerException, Is.TypeOf<GuestMmuReleasedException>());
        held.Open();
        Assert.That(held.Blocker.Wait(Guard), Is.True);
        Assert.That(held.Mmu.Stats.PresentSptes, Is.Zero);
    }

    [Test]
    public void DisposeWakesAFaultWaitingForAnInvalidationWhichThenFailsAsReleased()
    {
        using var held = new HeldInvalidation(waitSlice: TimeSpan.FromMinutes(5)); // only dispose's wake-up can finish the wait within the guard
        var fault = LongRunning(() => held.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read));
        Assert.That(SpinWait.SpinUntil(() => held.Mmu.Stats.InvalidationWaits > 0, Guard), Is.True);

        // Unsubscribing waits for the notifier call in flight, so dispose runs beside the held invalidation.
        var disposer = LongRunning(held.DisposeMmu);

        // Unsubscribing calls release (as mmu_notifier_unregister does), which wakes the waiter: this MMU will
        // never see the held invalidation's end.
        Assert.That(SpinWait.SpinUntil(() => fault.IsCompleted, Guard), Is.True, "dispose wakes the waiter");
        Assert.That(fault.Exception?.InnerException, Is.TypeOf<GuestMmuReleasedException>());
        held.Open();
        Assert.That(held.Blocker.Wait(Guard), Is.True);
        Assert.That(disposer.Wait(Guard), Is.True);
    }

    /// <summary>A dedicated thread: a blocked thread-pool thread could delay the work past a gate and hide the race.</summary>
    private static Task<T> LongRunning<T>(Func<T> work) => Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static Task LongRunning(Action work) => Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private sealed class GateNotifier : IMmuNotifier
    {
        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Open { get; } = new();

        public bool InvalidateRangeStart(in NotifierRange range)
        {
            Entered.Set();
            Open.Wait(TimeSpan.FromSeconds(30));
            return true;
        }
    }

    /// <summary>A second MMU over the same backing, registered after the gate so its start runs first.</summary>
    /// <summary>
    /// A VM plus a second MMU on its backing, with a MADV_DONTNEED of page 2 held inside notifier start: the
    /// second MMU (registered after the gate, so called before it) has counted the invalidation and zapped.
    /// <see cref="Open"/> lets it finish; disposing opens it too, so a failed assertion never leaves the host blocked.
    /// </summary>
    private sealed class HeldInvalidation : IDisposable
    {
        private readonly GateNotifier _gate = new();
        private readonly TestVmMmuOnSameBacking _second;
        private int _mmuDisposed;

        public HeldInvalidation(TimeSpan? waitSlice = null)
        {
            Vm = new TestVm();
            Vm.Mm.Notifiers.Register(_gate);
            _second = new TestVmMmuOnSameBacking(Vm);
            if (waitSlice is { } slice)
            {
                _second.Mmu.InvalidationWaitSlice = slice;
            }

            Blocker = LongRunning(() => Vm.Mm.Madvise(Vm.HvaOf(2), Page, Advice.DontNeed));
            Assert.That(_gate.Entered.Wait(Guard), Is.True, "the invalidation reached the gate");
        }

        public TestVm Vm { get; }

        public TdpMmu Mmu => _second.Mmu;

        public Task Blocker { get; }

        public void Open() => _gate.Open.Set();

        public void DisposeMmu()
        {
            if (Interlocked.Exchange(ref _mmuDisposed, 1) == 0)
            {
                _second.Dispose();
            }
        }

        public void Dispose()
        {
            Open();
            Blocker.Wait(Guard);
            DisposeMmu();
            Vm.Dispose();
        }
    }

    private sealed class TestVmMmuOnSameBacking : IDisposable
    {
        public TestVmMmuOnSameBacking(TestVm vm)
        {
            Mmu = new TdpMmu(new Hypervisor.GuestMmu.Tlb.TlbShootdown());
            Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), vm.Pages * Page, vm.Base, new HostProcessBacking(vm.Mm));
        }

        public TdpMmu Mmu { get; }

        public void Dispose() => Mmu.Dispose();
    }
}

using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// Swap seen from a vCPU: a pattern written by the guest, paged out by the host (MADV_PAGEOUT) and read back through
/// the walker and through the EPT fault path on both swap devices; the swap-out row of reference/mmu-notifier.md §3
/// with a secondary MMU attached (the spte is gone before the host PTE changes, the page is written after the end and
/// freed after the write) and the swap-in row (the EPT fault's get-user-pages maps the page with no notifier);
/// MADV_COLD and MADV_PAGEOUT as Linux defines them (no notifier, secondary accessed bits not consulted).
/// </summary>
public class SwapThroughEptTests
{
    private const ulong Page = 4096;
    private const int Pages = 16;

    [Test]
    public void A_guest_pattern_paged_out_reads_back_through_the_walker_and_the_ept_fault_path([Values] SwapDeviceKind device)
    {
        using var vm = new SwapVm(device);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpu, (ulong)page * Page, PageData(page)), Is.True);
        }

        vm.Mm.Madvise(vm.Ram, Pages * Page, Advice.PageOut);

        Assert.That(vm.SwappedPages(), Is.EqualTo(Pages), "every page went to swap");
        Assert.That(vm.PresentSptes(), Is.Zero, "and no spte still maps one");
        Assert.That(vm.Host.Reclaim.Stats.Pswpout, Is.EqualTo(Pages));
        vm.AssertAudited();

        var buffer = new byte[Page];
        for (var page = 0; page < Pages / 2; page++)
        {
            Assert.That(GuestRead(cpu, (ulong)page * Page, buffer), Is.True);
            Assert.That(buffer, Is.EqualTo(PageData(page)), $"page {page} through the walker");
        }

        for (var page = Pages / 2; page < Pages; page++)
        {
            var gpa = new Gpa((ulong)page * Page);
            Assert.That(vm.Mmu.HandleEptViolation(gpa, EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.Installed));
            var spte = vm.Mmu.Ept.Read(gpa.Gfn);
            Assert.That(spte.IsPresent, Is.True);
            Assert.That(vm.Host.Memory.FrameBytes(spte.Pfn).ToArray(), Is.EqualTo(PageData(page)), $"page {page} through the EPT fault path");
        }

        Assert.That(vm.SwappedPages(), Is.Zero);
        Assert.That(vm.Host.Reclaim.Stats.Pswpin + vm.Host.Reclaim.Stats.SwapCacheHits, Is.GreaterThanOrEqualTo(Pages));
        vm.AssertAudited();
    }

    [Test]
    public void Swap_out_under_a_secondary_mmu_zaps_the_spte_before_the_pte_changes_and_writes_and_frees_after_the_end([Values] SwapDeviceKind device)
    {
        using var vm = new SwapVm(device);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        Assert.That(GuestWrite(cpu, 0, PageData(0)), Is.True);
        var pfn = vm.Mmu.Ept.Read(new Gpa(0).Gfn).Pfn;
        var trace = new OrderingProbe(vm);
        vm.Host.Trace = trace;
        vm.Mm.Notifiers.Register(trace);

        vm.Mm.Madvise(vm.Ram, Page, Advice.PageOut);

        vm.Host.Trace = null;
        Assert.That(
            string.Join(' ', trace.Steps),
            Is.EqualTo($"start:Clear pte(present→none,spte:none) pte(none→swap,spte:none) flush end(pswpout:0) free({pfn},pswpout:1)"),
            "start(CLEAR) → PTE replaced by a swap entry under the PTL, then the run's one flush → end → write → free, the spte gone from the start on");
        vm.AssertAudited();
    }

    [Test]
    public void Swap_in_through_an_ept_violation_maps_the_page_with_no_notifier_and_installs_the_spte([Values] SwapDeviceKind device)
    {
        using var vm = new SwapVm(device);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        Assert.That(GuestWrite(cpu, 0, PageData(0)), Is.True);
        vm.Mm.Madvise(vm.Ram, Page, Advice.PageOut);
        var trace = new OrderingProbe(vm);
        vm.Host.Trace = trace;
        vm.Mm.Notifiers.Register(trace);

        var result = vm.Mmu.HandleEptViolation(new Gpa(0), EptAccess.Read);

        vm.Host.Trace = null;
        Assert.That(result.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(string.Join(' ', trace.Steps), Is.EqualTo("pte(swap→present,spte:none)"), "one PTE change, no start, end, flush or free");
        var spte = vm.Mmu.Ept.Read(new Gpa(0).Gfn);
        Assert.That(spte.Pfn, Is.EqualTo(vm.Mm.PageTable.Read(vm.Ram).Pfn), "the spte maps the page swapped in");
        Assert.That(vm.Host.Memory.FrameBytes(spte.Pfn).ToArray(), Is.EqualTo(PageData(0)));
        vm.AssertAudited();
    }

    [Test]
    public void Cold_clears_accessed_bits_without_a_notifier_keeps_the_sptes_and_moves_the_pages_to_the_inactive_list()
    {
        using var vm = new SwapVm(SwapDeviceKind.Zram);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpu, (ulong)page * Page, PageData(page)), Is.True);
        }

        var recorder = new NotifierEventRecorder();
        vm.Mm.Notifiers.Register(recorder);

        vm.Mm.Madvise(vm.Ram, Pages * Page, Advice.Cold);

        Assert.That(recorder.Events, Is.Empty, "MADV_COLD calls no notifier: no start/end, no clear_flush_young");
        Assert.That(vm.PresentSptes(), Is.EqualTo(Pages), "the guest keeps its mappings");
        Assert.That(vm.Host.Reclaim.Stats.Pswpout, Is.Zero, "no I/O");
        for (var page = 0; page < Pages; page++)
        {
            var pte = vm.Mm.PageTable.Read(vm.Ram + ((ulong)page * Page));
            Assert.That(pte.IsPresent, Is.True);
            Assert.That(pte.IsAccessed, Is.False, $"page {page}: the CPU accessed bit is cleared");
            ref var frame = ref vm.Host.Memory.Frame(pte.Pfn);
            Assert.That(frame.Has(FrameFlags.Lru) && !frame.Has(FrameFlags.Active), Is.True, $"page {page} is on the inactive list");
            Assert.That(frame.Has(FrameFlags.Accessed), Is.False, $"page {page}: PG_referenced is cleared");
        }

        vm.AssertAudited();
    }

    [Test]
    public void Pageout_ignores_the_guests_accessed_bits_and_asks_no_secondary_mmu_about_youth()
    {
        using var vm = new SwapVm(SwapDeviceKind.Zram);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpu, (ulong)page * Page, PageData(page)), Is.True);
        }

        var buffer = new byte[16];
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestRead(cpu, (ulong)page * Page, buffer), Is.True); // the guest uses every page just before
        }

        var recorder = new NotifierEventRecorder { YoungAnswer = true };
        vm.Mm.Notifiers.Register(recorder);

        vm.Mm.Madvise(vm.Ram, Pages * Page, Advice.PageOut);

        Assert.That(recorder.Count(NotifierTraceKind.ClearFlushYoung) + recorder.Count(NotifierTraceKind.ClearYoung) + recorder.Count(NotifierTraceKind.TestYoung), Is.Zero);
        Assert.That(vm.SwappedPages(), Is.EqualTo(Pages), "recently used or not, every exclusively owned page goes");
        vm.AssertAudited();
    }

    [TestCase(SwapIoStatus.IoError)]
    [TestCase(SwapIoStatus.ChecksumMismatch)]
    public void A_failed_swap_read_fails_the_guests_access_as_a_memory_failure_naming_the_slot_and_maps_nothing(SwapIoStatus cause)
    {
        using var vm = new SwapVm(SwapDeviceKind.File, new SwapFaultInjection { Seed = 5 });
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        Assert.That(GuestWrite(cpu, 0, PageData(0)), Is.True);
        vm.Mm.Madvise(vm.Ram, Page, Advice.PageOut);
        var slot = HostPteEncoding.SwapSlotOf(vm.Mm.PageTable.Read(vm.Ram));
        var device = (FaultInjectingSwapDevice)vm.Host.Reclaim.Area!.Device;
        if (cause == SwapIoStatus.IoError)
        {
            device.ReadErrorRate = 1;
        }
        else
        {
            device.CorruptReadRate = 1;
        }

        var fault = vm.Mmu.HandleEptViolation(new Gpa(0), EptAccess.Read);
        var buffer = new byte[Page];
        cpu.Port.EnterGuest();
        var access = cpu.Read(new Gva(0), buffer);
        var detail = cpu.Walker.LastFailureDetail;
        cpu.Port.ExitGuest();

        var named = cause == SwapIoStatus.IoError ? "read I/O error" : "checksum mismatch";
        Assert.That(fault.Outcome, Is.EqualTo(EptFaultOutcome.MemoryFailure), "the EPT fault path");
        Assert.That(fault.Detail, Does.Contain($"swap slot {slot}").And.Contain(named));
        Assert.That(access.Status, Is.EqualTo(TranslationStatus.Error), "the walker");
        Assert.That(access.Fault.Error, Is.EqualTo(WalkError.MemoryFailure));
        Assert.That(detail, Does.StartWith("gpa 0x0 in memslot 0").And.Contain($"swap slot {slot}"));
        Assert.That(buffer.All(b => b == 0), Is.True, "no data was delivered");
        Assert.That(vm.PresentSptes(), Is.Zero, "no spte was installed");
        vm.AssertAudited();

        device.ReadErrorRate = 0;
        device.CorruptReadRate = 0;
        Assert.That(GuestRead(cpu, 0, buffer), Is.True);
        Assert.That(buffer, Is.EqualTo(PageData(0)), "the slot kept its data: a later read succeeds");
        vm.AssertAudited();
    }

    [Test]
    public void A_guest_write_over_the_limit_with_swap_full_fails_as_host_out_of_memory_and_loses_nothing()
    {
        using var vm = new SwapVm(SwapDeviceKind.Zram, swapBytes: 12 * Page, limitPages: 4); // 11 usable slots
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        var written = 0;
        AccessResult last = default;
        for (; written < Pages; written++)
        {
            cpu.Port.EnterGuest();
            last = cpu.Write(new Gva((ulong)written * Page), PageData(written));
            cpu.Port.ExitGuest();
            if (!last.IsOk)
            {
                break;
            }
        }

        Assert.That(written, Is.InRange(4 + 8, 4 + 11), "the limit plus what swap could take");
        Assert.That(last.Status, Is.EqualTo(TranslationStatus.Error));
        Assert.That(last.Fault.Error, Is.EqualTo(WalkError.HostOutOfMemory));
        Assert.That(cpu.Walker.LastFailureDetail, Does.StartWith($"gpa 0x{written * (int)Page:x} in memslot 0"));
        Assert.That(vm.Host.Reclaim.Stats.OomFailures, Is.Positive);
        vm.AssertAudited();

        vm.Mm.Cgroup.MaxPages = Pages;
        var buffer = new byte[Page];
        for (var page = 0; page < written; page++)
        {
            Assert.That(GuestRead(cpu, (ulong)page * Page, buffer), Is.True);
            Assert.That(buffer, Is.EqualTo(PageData(page)), $"page {page} written before the failure is intact");
        }

        vm.AssertAudited();
    }

    /// <summary>One guest write as the vCPU loop makes it: in guest mode, after the instruction-boundary shootdown check.</summary>
    private static bool GuestWrite(MmuContext cpu, ulong address, byte[] data) => InGuest(cpu, () => cpu.Write(new Gva(address), data).IsOk);

    /// <summary>One guest read as the vCPU loop makes it (see <see cref="GuestWrite"/>).</summary>
    private static bool GuestRead(MmuContext cpu, ulong address, byte[] buffer) => InGuest(cpu, () => cpu.Read(new Gva(address), buffer).IsOk);

    private static bool InGuest(MmuContext cpu, Func<bool> access)
    {
        cpu.Port.EnterGuest();
        try
        {
            cpu.Port.ServiceRequests();
            return access();
        }
        finally
        {
            cpu.Port.ExitGuest(); // out of guest mode while the host works: its shootdowns need no acknowledgement
        }
    }

    private static byte[] PageData(int page)
    {
        var bytes = new byte[Page];
        new Random(9_001 + page).NextBytes(bytes);
        BitConverter.TryWriteBytes(bytes, page);
        return bytes;
    }

    /// <summary>
    /// Records the swap-out row's steps for the VM's mm, with the state of page 0's spte at each PTE change and the
    /// swap writes done at the end and at each free. Runs on the host's thread under the page-table lock: reads only.
    /// </summary>
    private sealed class OrderingProbe(SwapVm vm) : IHostTrace, IMmuNotifier
    {
        public List<string> Steps { get; } = [];

        public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after)
        {
            if (mm == vm.Mm)
            {
                Steps.Add($"pte({Kind(before)}→{Kind(after)},spte:{(vm.Mmu.Ept.Read(new Gpa(address.Value - vm.Ram.Value).Gfn).IsPresent ? "present" : "none")})");
            }
        }

        public void TlbFlushed(Mm mm, Hva start, Hva end)
        {
            if (mm == vm.Mm)
            {
                Steps.Add("flush");
            }
        }

        public void FrameFreed(Pfn pfn) => Steps.Add($"free({pfn},pswpout:{vm.Host.Reclaim.Stats.Pswpout})");

        public bool InvalidateRangeStart(in NotifierRange range)
        {
            Steps.Add("start:" + range.Event);
            return true;
        }

        public void InvalidateRangeEnd(in NotifierRange range) => Steps.Add($"end(pswpout:{vm.Host.Reclaim.Stats.Pswpout})");

        private static string Kind(HostPte pte) =>
            pte.IsNone ? "none" : pte.IsPresent ? "present" : HostPteEncoding.Classify(pte) == HostPteKind.Swap ? "swap" : "other";
    }

    /// <summary>A host with swap, a process whose RAM backs 16 guest pages through one memslot, and its TDP MMU.</summary>
    private sealed class SwapVm : IDisposable
    {
        public SwapVm(SwapDeviceKind device, SwapFaultInjection? faults = null, ulong swapBytes = 4UL << 20, long limitPages = 0)
        {
            Host = new Host(new HostOptions
            {
                Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
                Swap = new SwapOptions { Kind = device, SizeBytes = swapBytes, FaultInjection = faults },
            });
            Mm = limitPages > 0 ? Host.CreateMm(0, Host.Reclaim.CreateCgroup("guest", limitPages)) : Host.CreateMm();
            Ram = Mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
            Mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions());
            Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), Pages * Page, Ram, new HostProcessBacking(Mm));
        }

        public Host Host { get; }

        public Mm Mm { get; }

        public Hva Ram { get; }

        public TdpMmu Mmu { get; }

        public int SwappedPages() =>
            Enumerable.Range(0, Pages).Count(page =>
            {
                var pte = Mm.PageTable.Read(Ram + ((ulong)page * Page));
                return !pte.IsNone && !pte.IsPresent && HostPteEncoding.Classify(pte) == HostPteKind.Swap;
            });

        public int PresentSptes() => Enumerable.Range(0, Pages).Count(page => Mmu.Ept.Read(new Gpa((ulong)page * Page).Gfn).IsPresent);

        public void AssertAudited()
        {
            var violations = HostMmAuditor.Check(Host).Concat(MmuAuditor.Check(Mmu)).ToList();
            Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
        }

        public void Dispose()
        {
            Mmu.Dispose();
            Mm.Exit();
            Host.Dispose();
        }
    }
}

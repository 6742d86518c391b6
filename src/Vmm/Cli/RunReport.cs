using System.Globalization;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv run</c>, for either accelerator: a title with how the run ended and the exit code, the
/// detail and (when the VM broke) the boot vCPU's registers, then a table of what the accelerator counted.
/// </summary>
internal static class RunReport
{
    /// <summary>Writes the report of <paramref name="result"/>, a run of <paramref name="vm"/>.</summary>
    /// <param name="result">The run's result.</param>
    /// <param name="vm">The VM that ran (its options, boot protocol, stop request and MMU).</param>
    /// <param name="name">The image's file name.</param>
    /// <param name="writer">Where the report goes.</param>
    public static void Write(VmRunResult result, Vm vm, string name, ReportWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.Title(Title(name, result));
        if (result.Kind is not VmStopKind.GuestExit)
        {
            writer.Paragraph(VmExitStatus.BreaksTheVm(result.Kind) && result.Registers is { } registers
                ? [result.Detail, .. RegisterFormatter.Lines(registers)]
                : [result.Detail]);
        }

        var table = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        if (result.GuestExitCode is { } code)
        {
            table.AddRow("guest exit code", code.ToString(c), DescribeGuestExit(vm.Stop.Request, code));
        }

        table.AddRow("boot", $"{vm.Protocol}", $"{vm.Options.MemoryBytes >> 20} MiB, {vm.Options.CpuCount} vCPU(s), cmdline \"{vm.Options.CommandLine}\"");
        if (vm.IsEmulated)
        {
            AddEmulatedRows(table, result, vm);
        }
        else
        {
            var boot = result.BootVcpu.Counters;
            table.AddRow("time", $"{result.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", "in KVM_RUN and device exits");
            table.AddRow("VM exits", boot.Exits.ToString("N0", c), $"{boot.PortIo.ToString("N0", c)} port I/O, {boot.Mmio.ToString("N0", c)} MMIO");
            table.AddRow("last RIP", $"0x{result.Registers?.Rip ?? 0:x}", "where the vCPU stopped");
        }

        writer.Table(table);
    }

    /// <summary>The report's first line: the image, the accelerator unless emulated, how the run ended and <c>hv run</c>'s exit code.</summary>
    /// <param name="name">The image's file name.</param>
    /// <param name="result">The run's result.</param>
    internal static string Title(string name, VmRunResult result) =>
        $"hv run {name}{(result.Accelerator == AcceleratorKind.Kvm ? " --accel kvm" : string.Empty)}: {Describe(result)}, exit status {result.ExitCode}";

    /// <summary>The report row's words for how the guest exited, with the status QEMU would return for it.</summary>
    /// <param name="request">The device's stop request, or null when the guest halted.</param>
    /// <param name="guestExitCode">The guest's code.</param>
    internal static string DescribeGuestExit(VmStop? request, int guestExitCode) => request switch
    {
        { Reason: VmStopReason.Shutdown } => string.Create(
            CultureInfo.InvariantCulture,
            $"written to {request.Device} port 0xF4; QEMU's exit status would be ({guestExitCode}<<1)|1 = {request.ExitStatus}"),
        { Reason: VmStopReason.PowerOff } => $"ACPI power-off by {request.Device}; QEMU's exit status would be 0",
        { Reason: VmStopReason.Reset } => $"machine reset by {request.Device} (its CPU reset line); the VM stops as QEMU -no-reboot does, whose exit status would be 0",
        _ => "no device stop request",
    };

    private static string Describe(VmRunResult result) => result.Kind switch
    {
        VmStopKind.GuestExit when result.StopReason == VmStopReason.Reset => "the guest reset the machine (stopped as with -no-reboot)",
        VmStopKind.GuestExit => $"the guest exited with code {result.GuestExitCode}",
        VmStopKind.Halted => "the guest halted with nothing to wake it",
        VmStopKind.TripleFault => "the guest triple-faulted",
        VmStopKind.Shutdown => "the guest triple-faulted (KVM_EXIT_SHUTDOWN)",
        VmStopKind.InternalError => result.Cause is { } cause ? $"the VM could not continue ({cause})" : "the VM could not continue",
        VmStopKind.InstructionLimit => "instruction limit reached",
        VmStopKind.Timeout => "timed out",
        VmStopKind.Cancelled => "cancelled",
        VmStopKind.HostOutOfMemory => "the host ran out of memory for the guest",
        VmStopKind.MemoryFailure => "memory failure: a guest page could not be read back from swap",
        _ => "still running",
    };

    private static string TierValue(ExecutionTier tier, CpuStats cpu) =>
        tier == ExecutionTier.Interp ? "interp" : $"jit {Percent(cpu.Instructions == 0 ? 0 : (double)cpu.Jit.Instructions / cpu.Instructions)}";

    private static string TierText(VmOptions options, CpuStats cpu)
    {
        var c = CultureInfo.InvariantCulture;
        if (options.Tier == ExecutionTier.Interp)
        {
            return "every block on the interpreter (--tier interp)";
        }

        var blocks = cpu.Jit.BlocksCompiled;
        var perBlock = blocks == 0 ? string.Empty : $", mean {(cpu.Jit.CompileTime.TotalMicroseconds / blocks).ToString("N1", c)} µs per block";
        return $"of instructions retired in compiled code, the rest on the interpreter; {blocks.ToString("N0", c)} blocks compiled "
               + $"(--jit-threshold {options.JitThreshold.ToString(c)}, --jit-compile {options.JitCompile.ToString().ToLowerInvariant()}) in {cpu.Jit.CompileTime.TotalMilliseconds.ToString("N1", c)} ms{perBlock}"
               + $"; {cpu.Jit.ChainedBlocks.ToString("N0", c)} blocks entered chained from the compiled block before"
               + $"; {cpu.Jit.LoopTraces.ToString("N0", c)} two-block loops compiled as one";
    }

    private static void AddEmulatedRows(ReportTable table, VmRunResult result, Vm vm)
    {
        var c = CultureInfo.InvariantCulture;
        table.AddEmphasisedRow("instructions", result.Cpu.Instructions.ToString("N0", c), "retired by the vCPUs");
        table.AddRow("time", $"{result.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", "running guest code");
        table.AddEmphasisedRow("MIPS", result.Mips >= 10 ? result.Mips.ToString("N1", c) : result.Mips.ToString("G3", c), "million guest instructions per second (a short guest mostly measures first-use JIT compilation)");
        table.AddRow("tier", TierValue(vm.Options.Tier, result.Cpu), TierText(vm.Options, result.Cpu));
        if (result.Cpu.Jit.InterpretedForms is { Count: > 0 } forms)
        {
            var total = forms.Sum(f => f.Value);
            table.AddRow(
                "interpreted in blocks",
                total.ToString("N0", c),
                $"by form ({Cpu.Jit.BlockCompiler.ProfileVariable}=1): " + string.Join(", ", forms.Take(16).Select(f => $"{f.Key} {f.Value.ToString("N0", c)}")));
        }

        table.AddRow("decode-cache hit rate", Percent(result.Cpu.DecodeCacheHitRate), $"{result.Cpu.DecodeCacheHits.ToString("N0", c)} block lookups hit, {result.Cpu.DecodeCacheMisses.ToString("N0", c)} decoded ({result.Cpu.InstructionsDecoded.ToString("N0", c)} instructions)");
        table.AddRow("code-page invalidations", result.CodePageInvalidations.ToString("N0", c), "stores that hit a page holding decoded code");
        table.AddEmphasisedRow("EPT violations", result.Mmu.Faults.ToString("N0", c), $"{result.Mmu.Installs.ToString("N0", c)} sptes installed, {result.Mmu.Retries.ToString("N0", c)} invalidation retries ({result.Mmu.InvalidationWaits.ToString("N0", c)} waited for an invalidation to end), {result.Mmu.HostFaults.ToString("N0", c)} host faults");
        table.AddRow("sptes present", result.Mmu.PresentSptes.ToString("N0", c), result.Mmu.Pages2M == 0 ? $"4 KiB leaves in {result.Mmu.TablePages.ToString("N0", c)} EPT table pages" : $"{result.Mmu.Pages4K.ToString("N0", c)} 4 KiB and {result.Mmu.Pages2M.ToString("N0", c)} 2 MiB leaves in {result.Mmu.TablePages.ToString("N0", c)} EPT table pages");
        var ept = vm.Mmu!.Ept.GetStats();
        table.AddRow(
            "sptes zapped",
            result.Mmu.Zapped.ToString("N0", c),
            $"by {result.Mmu.Invalidations.ToString("N0", c)} notifier invalidations, {result.Mmu.TlbFlushes.ToString("N0", c)} TLB shootdowns; "
            + $"{ept.WholeTableClears.ToString("N0", c)} full leaf tables cleared unread (clean ones; any under --dirty-policy map), {ept.EmptyTablesSkipped.ToString("N0", c)} empty ones skipped");
        var shootdown = vm.Shootdown!;
        var waits = shootdown.Waits;
        var seconds = result.Elapsed.TotalSeconds;
        table.AddRow(
            "TLB shootdowns",
            shootdown.Flushes.ToString("N0", c),
            (seconds > 0 ? $"{(shootdown.Flushes / seconds).ToString("N0", c)} per second; " : string.Empty)
            + (waits == 0
                ? "none waited for a vCPU in guest mode"
                : $"{waits.ToString("N0", c)} waited for a vCPU in guest mode: mean {(shootdown.WaitTime.TotalMicroseconds / waits).ToString("N1", c)} µs, longest {shootdown.MaxWait.TotalMicroseconds.ToString("N1", c)} µs (request to last acknowledgement)"));
        var (policy, dirty) = DirtyPolicyOption.ReportRow(vm.Mmu.Options.DirtyTracking, result.Mmu);
        table.AddRow("dirty policy", policy, dirty);
        if (vm.Options.HostForkInterval is not null)
        {
            table.AddEmphasisedRow("host forks", result.HostForks.ToString("N0", c), "copy-on-write snapshots of guest RAM taken by the host under the running guest");
        }

        if (result.HostMemory is { } host)
        {
            AddHostMemoryRows(table, host);
        }

        if (result.Ksm is { } ksm)
        {
            AddKsmRows(table, ksm);
        }

        if (result.Dma is { } dma)
        {
            AddDmaRows(table, dma);
        }

        if (vm.Options.LegacyChangePte)
        {
            AddChangePteRow(table, result.Mmu);
        }

        if (vm.Options.NumaNodes is not null && vm.GuestMemory is { } ram)
        {
            AddNumaRows(table, ram);
        }

        if (vm.Options.TransparentHugePages != HostMm.ThpMode.Never && vm.Process is { } process)
        {
            AddThpRows(table, vm.Options.TransparentHugePages, process, result.Mmu);
        }

        table.AddEmphasisedRow("TLB hit rate", Percent(result.TlbHitRate), $"{result.Tlb.Hits.ToString("N0", c)} hits, {result.Tlb.Misses.ToString("N0", c)} misses, {result.Tlb.FullFlushes.ToString("N0", c)} full / {result.Tlb.NonGlobalFlushes.ToString("N0", c)} CR3 / {result.Tlb.PageFlushes.ToString("N0", c)} INVLPG flushes");
        table.AddRow("2-D walks", result.Walker.Walks.ToString("N0", c), $"{result.Walker.GuestPageFaults.ToString("N0", c)} guest #PF, {result.Walker.GuestAdUpdates.ToString("N0", c)} guest A/D and {result.Walker.EptAdUpdates.ToString("N0", c)} EPT A/D updates");
        table.AddRow("exceptions", result.Cpu.ExceptionsDelivered.ToString("N0", c), $"delivered through the IDT ({result.Cpu.PageFaults.ToString("N0", c)} page faults)");
        if (result.Cpu.InterruptsDelivered > 0 || result.Cpu.HaltWakeups > 0)
        {
            var sleeps = vm.Emulated?.Halts is { } halts
                ? $"; {halts.Sleeps.ToString("N0", c)} halts slept until another vCPU, {halts.Wakeups.ToString("N0", c)} woken by an IPI or start-up"
                : string.Empty;
            var ioApic = vm.Devices.IoApic.Sent > 0 ? $"; {vm.Devices.IoApic.Sent.ToString("N0", c)} from the I/O APIC" : string.Empty;
            table.AddRow("interrupts", result.Cpu.InterruptsDelivered.ToString("N0", c), $"NMIs and APIC interrupts delivered through the IDT; {result.Cpu.HaltWakeups.ToString("N0", c)} HLTs woken, {result.Cpu.HaltedTicks.ToString("N0", c)} TSC ticks skipped halted{sleeps}{ioApic}");
        }

        table.AddRow("device accesses", (result.Cpu.PortIo + result.Cpu.MmioAccesses).ToString("N0", c), $"{result.Cpu.PortIo.ToString("N0", c)} port I/O, {result.Cpu.MmioAccesses.ToString("N0", c)} MMIO");
    }

    /// <summary>The reclaim and swap rows of a run under <c>--host-mem</c>, under Linux's <c>/proc/vmstat</c> names.</summary>
    /// <param name="table">The report table.</param>
    /// <param name="host">The run's host-memory counters.</param>
    internal static void AddHostMemoryRows(ReportTable table, HostMemorySnapshot host)
    {
        var c = CultureInfo.InvariantCulture;
        var r = host.Reclaim;
        table.AddRow(
            "host memory",
            $"{(host.LimitBytes >> 20).ToString("N0", c)} MiB",
            $"the VM cgroup's memory.max; peak {(host.Cgroup.PeakPages * 4096 >> 20).ToString("N0", c)} MiB, {host.Cgroup.MaxEvents.ToString("N0", c)} charges at the limit; LRU {Policy(host.Policy)}, secondary aging {(host.SecondaryAging ? "on" : "off")}");
        table.AddRow(
            "swap device",
            host.ZramCompressionRatio is { } ratio ? $"{ratio.ToString("0.00", c)}:1" : "file",
            $"{host.SwapDevice}: {host.Swap.UsedSlots.ToString("N0", c)} of {host.Swap.TotalSlots.ToString("N0", c)} slots used{(host.ZramCompressionRatio is null ? string.Empty : " (compression ratio)")}");
        table.AddRow("guest pages resident", host.ResidentPages.ToString("N0", c), $"{host.SwappedPages.ToString("N0", c)} on swap now (VmSwap), {r.SwapCachedPages.ToString("N0", c)} in the swap cache");
        table.AddEmphasisedRow("pswpout", r.Pswpout.ToString("N0", c), $"pages written to swap ({r.SwapWriteErrors.ToString("N0", c)} write errors kept resident)");
        table.AddEmphasisedRow("pswpin", r.Pswpin.ToString("N0", c), $"pages read back from swap ({r.Pgmajfault.ToString("N0", c)} major faults, {r.MemoryFailures.ToString("N0", c)} memory failures)");
        table.AddRow("pgscan", r.Pgscan.ToString("N0", c), $"inactive pages scanned: {r.PgscanKswapd.ToString("N0", c)} by kswapd, {r.PgscanDirect.ToString("N0", c)} by direct reclaim");
        table.AddRow("pgsteal", r.Pgsteal.ToString("N0", c), $"pages reclaimed: {r.PgstealKswapd.ToString("N0", c)} by kswapd ({host.KswapdSteps.ToString("N0", c)} steps), {r.PgstealDirect.ToString("N0", c)} by direct reclaim");
        table.AddRow("pgactivate", r.Pgactivate.ToString("N0", c), $"pages moved to the active list ({r.Pgdeactivate.ToString("N0", c)} deactivated)");
        table.AddRow("workingset_refault_anon", r.WorkingsetRefaultAnon.ToString("N0", c), $"refaults of evicted pages ({r.WorkingsetActivateAnon.ToString("N0", c)} activated at once, {r.WorkingsetRestoreAnon.ToString("N0", c)} restored)");
        table.AddRow("swap-cache hits", r.SwapCacheHits.ToString("N0", c), "swap faults that found the page in the swap cache (no I/O)");
        table.AddRow("readahead hits", $"{r.SwapRaHit.ToString("N0", c)} / {r.SwapRa.ToString("N0", c)}", "swap_ra_hit / swap_ra: read-ahead pages a later fault used");
        table.AddRow("secondary young", $"{r.SecondaryYoungHits.ToString("N0", c)} / {r.SecondaryYoungQueries.ToString("N0", c)}", $"EPT accessed-bit answers of \"young\" / young ops sent while aging{(host.SecondaryAging ? string.Empty : " (ignored: secondary aging off)")}");
        table.AddRow("allocstall", r.Allocstall.ToString("N0", c), $"allocations that had to reclaim first ({r.OomFailures.ToString("N0", c)} failed: out of memory)");
    }

    /// <summary>The KSM rows of a run under <c>--ksm</c>, under Linux's <c>/sys/kernel/mm/ksm</c> and <c>ksm_stat</c> names.</summary>
    /// <param name="table">The report table.</param>
    /// <param name="ksm">The run's KSM counters.</param>
    internal static void AddKsmRows(ReportTable table, KsmSnapshot ksm)
    {
        var c = CultureInfo.InvariantCulture;
        var k = ksm.Host;
        table.AddEmphasisedRow("ksm_merging_pages", ksm.Process.MergingPages.ToString("N0", c), $"this VM's pages mapped to a shared KSM page ({ksm.Process.ZeroPages.ToString("N0", c)} to the zero page; ksm_process_profit {Mib(ksm.Process.Profit)})");
        table.AddEmphasisedRow("pages_sharing", k.PagesSharing.ToString("N0", c), $"host-wide pages saved: further mappings of {k.PagesShared.ToString("N0", c)} shared KSM pages (pages_shared)");
        table.AddEmphasisedRow("general_profit", Mib(k.GeneralProfit), $"host-wide memory saved less the scanner's rmap items ({k.RmapItems.ToString("N0", c)} of 64 B)");
        table.AddRow("pages_unshared", k.PagesUnshared.ToString("N0", c), $"pages in the unstable tree, unique so far ({k.PagesVolatile.ToString("N0", c)} volatile: changed since the last scan)");
        table.AddRow("full_scans", k.FullScans.ToString("N0", c), $"ksmd's passes over mergeable memory: {k.PagesScanned.ToString("N0", c)} pages scanned ({k.PagesSkipped.ToString("N0", c)} skipped by smart scan) in {ksm.KsmdSteps.ToString("N0", c)} batches of pages_to_scan={ksm.PagesToScan.ToString(c)}, sleep_millisecs={ksm.SleepMilliseconds.ToString(c)}");
        table.AddRow("stable_node_chains", k.StableNodeChains.ToString("N0", c), $"contents shared by more than max_page_sharing mappings, held as {k.StableNodeDups.ToString("N0", c)} dups");
        table.AddEmphasisedRow("cow_ksm", ksm.CowKsm.ToString("N0", c), "host-wide guest writes that broke a merged page copy-on-write");
    }

    /// <summary>The DMA engine's rows of a run under <c>--dma-cache</c>: copies, the cache's hit rate and invalidations, the debug check's stale DMAs.</summary>
    /// <param name="table">The report table.</param>
    /// <param name="dma">The engine's counters.</param>
    internal static void AddDmaRows(ReportTable table, Hypervisor.Vmm.Devices.Dma.DmaEngineCounters dma)
    {
        var c = CultureInfo.InvariantCulture;
        var mode = DmaCacheOption.Name(dma.Mode);
        table.AddEmphasisedRow("DMA copies", dma.Copies.ToString("N0", c), $"{Mib(dma.Bytes)} copied frame to frame by the DMA engine ({mode} cache); {dma.Failures.ToString("N0", c)} refused or failed");
        table.AddEmphasisedRow(
            "DMA cache hit rate",
            Percent(dma.HitRate),
            $"{dma.Hits.ToString("N0", c)} page translations from the cache, {dma.Misses.ToString("N0", c)} through get-user-pages; {dma.Regions.ToString("N0", c)} buffer ranges registered, {dma.CachedTranslations.ToString("N0", c)} translations cached now");
        table.AddRow(
            "DMA invalidations",
            dma.Invalidations.ToString("N0", c),
            dma.Mode == Hypervisor.Vmm.Devices.Dma.DmaCacheMode.Safe
                ? $"cached translations dropped by {dma.EventsRead.ToString("N0", c)} user-channel events; {dma.Retries.ToString("N0", c)} copies redone because the generation counter moved under them, {dma.Barriers.ToString("N0", c)} waits for invalidations in flight to end (after events, and at each new registration)"
                : "none: only the safe cache listens to the user channel");
        table.AddEmphasisedRow(
            "stale DMAs",
            dma.StaleDmas.ToString("N0", c),
            $"copies that used a frame the host PTE no longer mapped (debug check): {dma.StalePages.ToString("N0", c)} pages, {dma.StaleFreeFrames.ToString("N0", c)} of them free frames, {dma.BlockedWrites.ToString("N0", c)} writes into host page tables refused");
    }

    /// <summary>The change_pte row of a run under <c>--legacy-change-pte</c>: how often the EPT MMU had an spte to change.</summary>
    /// <param name="table">The report table.</param>
    /// <param name="mmu">The run's MMU counters.</param>
    internal static void AddChangePteRow(ReportTable table, Hypervisor.GuestMmu.Mmu.TdpMmuStats mmu)
    {
        var c = CultureInfo.InvariantCulture;
        table.AddEmphasisedRow(
            "change_pte hits",
            $"{mmu.ChangePteHits.ToString("N0", c)} / {(mmu.ChangePteHits + mmu.ChangePteMisses).ToString("N0", c)}",
            "legacy change_pte calls that found an spte to retarget; the rest came after invalidate_range_start had zapped it, which is why Linux 6.10 removed the op");
    }

    /// <summary>
    /// The NUMA rows of a run under <c>--numa</c>: guest RAM's resident pages per node (numa_maps), the host's migration
    /// counters under <c>/proc/vmstat</c>'s names, and the faults of this VM's process that waited on a migration entry.
    /// </summary>
    /// <param name="table">The report table.</param>
    /// <param name="ram">The VM's guest RAM (its process still alive, or every node reads zero).</param>
    internal static void AddNumaRows(ReportTable table, GuestRam ram)
    {
        var c = CultureInfo.InvariantCulture;
        var process = ram.Process;
        var host = process.Host;
        var perNode = ram.ResidentPagesPerNode();
        table.AddEmphasisedRow("guest pages per node", PerNode(perNode), $"guest RAM's resident pages by host NUMA node (numa_maps), {host.Memory.NodeCount.ToString(c)} nodes of {(host.Memory.GetNode(0).FrameCount * 4096 >> 20).ToString("N0", c)} MiB");
        var m = host.Migration.Stats;
        table.AddRow("pgmigrate_success", m.PgmigrateSuccess.ToString("N0", c), $"pages migrated between nodes ({m.Retries.ToString("N0", c)} -EAGAIN retries)");
        table.AddRow("pgmigrate_fail", m.PgmigrateFail.ToString("N0", c), $"pages that stayed after every pass: {m.FailBusy.ToString("N0", c)} busy, {m.FailReferenced.ToString("N0", c)} referenced, {m.FailTargetNodeFull.ToString("N0", c)} target node full");
        table.AddRow("migration-entry waits", process.MigrationEntryWaits.ToString("N0", c), $"faults that waited on a migration entry, {process.GupMigrationEntryWaits.ToString("N0", c)} of them in get-user-pages (EPT violations)");
        var b = host.NumaBalancing.Stats;
        if (b.NumaPteUpdates > 0)
        {
            table.AddRow("numa_pte_updates", b.NumaPteUpdates.ToString("N0", c), $"PTEs NUMA balancing made PROT_NONE ({b.FullScans.ToString("N0", c)} full scans); each scan zaps the sptes it covers");
            table.AddRow("numa_hint_faults", b.NumaHintFaults.ToString("N0", c), $"hinting faults, {b.NumaHintFaultsLocal.ToString("N0", c)} on the faulting thread's node (numa_hint_faults_local)");
            table.AddRow("numa_pages_migrated", b.NumaPagesMigrated.ToString("N0", c), $"pages hinting faults moved to the faulting thread's node ({b.NumaMigrateFailed.ToString("N0", c)} attempts failed)");
        }
    }

    /// <summary>
    /// The transparent huge page rows of a run under <c>--thp</c>: the host process's THP counters under
    /// <c>/proc/vmstat</c>'s names, AnonHugePages, KVM's <c>pages_2m</c> / <c>pages_4k</c>, and khugepaged's collapses.
    /// </summary>
    /// <param name="table">The report table.</param>
    /// <param name="mode">The host's THP mode.</param>
    /// <param name="process">The VM's host process (alive: the report is written before the VM is disposed).</param>
    /// <param name="mmu">The run's MMU counters.</param>
    internal static void AddThpRows(ReportTable table, HostMm.ThpMode mode, HostMm.Mm process, Hypervisor.GuestMmu.Mmu.TdpMmuStats mmu)
    {
        var c = CultureInfo.InvariantCulture;
        var thp = process.ThpStats;
        table.AddRow("thp mode", RunThpOptions.Name(mode), mode == HostMm.ThpMode.Madvise ? "the host's transparent_hugepage/enabled; guest RAM advised MADV_HUGEPAGE" : "the host's transparent_hugepage/enabled; guest RAM 2 MiB-aligned");
        table.AddEmphasisedRow("thp_fault_alloc", thp.ThpFaultAlloc.ToString("N0", c), $"host faults that mapped a new 2 MiB page ({thp.ThpZeroPageFaults.ToString("N0", c)} read faults mapped the huge zero page)");
        table.AddRow("thp_fault_fallback", thp.ThpFaultFallback.ToString("N0", c), "huge faults that found no free 2 MiB block and fell back to 4 KiB");
        table.AddRow("thp_split_pmd", thp.ThpSplitPmd.ToString("N0", c), "host huge leaves split into 512 PTEs (each zaps its 2 MiB spte)");
        table.AddRow("AnonHugePages", $"{(thp.HugeLeaves * 2048).ToString("N0", c)} kB", $"{thp.HugeLeaves.ToString("N0", c)} host huge leaves mapped now");
        table.AddEmphasisedRow("pages_2m", mmu.Pages2M.ToString("N0", c), $"2 MiB EPT leaves present ({mmu.LargeInstalls.ToString("N0", c)} installed in the run)");
        table.AddRow("pages_4k", mmu.Pages4K.ToString("N0", c), $"4 KiB EPT leaves present, in {mmu.TablePages.ToString("N0", c)} EPT table pages");
        var khugepaged = process.Host.Khugepaged.Stats;
        if (khugepaged.PagesCollapsed > 0 || khugepaged.FullScans > 0)
        {
            table.AddRow("thp_collapse_alloc", khugepaged.PagesCollapsed.ToString("N0", c), $"huge pages khugepaged collapsed from 512 small ones ({khugepaged.CollapseAllocFailed.ToString("N0", c)} allocations failed, {khugepaged.FullScans.ToString("N0", c)} full scans)");
        }
    }

    /// <summary>Pages per node as numa_maps writes them: <c>N0=1,024 N1=0</c>.</summary>
    /// <param name="pages">One count per node.</param>
    internal static string PerNode(IReadOnlyList<long> pages) =>
        string.Join(' ', pages.Select((n, i) => string.Create(CultureInfo.InvariantCulture, $"N{i}={n:N0}")));

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("N1", CultureInfo.InvariantCulture) + " MiB";

    private static string Policy(LruPolicy policy) => policy == LruPolicy.MultiGen ? "mglru" : "classic";

    private static string Percent(double fraction) => (fraction * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %";
}

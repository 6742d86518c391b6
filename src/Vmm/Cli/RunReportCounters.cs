using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The typed counters of <c>hv run --json</c>, named as the text report's rows are: Linux's own names as they are
/// (<c>pswpout</c>, <c>pgscan</c>, <c>ksm_merging_pages</c>, <c>thp_fault_alloc</c>, <c>pages_2m</c>), the other figures
/// lower-cased with underscores (<c>ept_violations</c>, <c>sptes_zapped</c>). Per VM: what its own run counted; for the
/// host: reclaim, swap and KSM, which every VM on it shares.
/// </summary>
internal static class RunReportCounters
{
    /// <summary>One VM's counters (an emulated VM's; a KVM run has only the exit code, time and exits).</summary>
    public static IEnumerable<ReportCounter> OfVm(VmRunResult result, Vm vm)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(vm);
        if (result.GuestExitCode is { } code)
        {
            yield return new("guest_exit_code", code);
        }

        yield return new("exit_status", result.ExitCode);
        yield return new("time_ms", Math.Round(result.Elapsed.TotalMilliseconds, 3));
        if (!vm.IsEmulated)
        {
            yield return new("vm_exits", result.BootVcpu.Counters.Exits);
            yield break;
        }

        yield return new("instructions", result.Cpu.Instructions);
        yield return new("mips", Math.Round(result.Mips, 3));
        yield return new("ept_violations", result.Mmu.Faults);
        yield return new("sptes_installed", result.Mmu.Installs);
        yield return new("invalidation_retries", result.Mmu.Retries);
        yield return new("host_faults", result.Mmu.HostFaults);
        yield return new("sptes_present", result.Mmu.PresentSptes);
        yield return new("sptes_zapped", result.Mmu.Zapped);
        yield return new("notifier_invalidations", result.Mmu.Invalidations);
        yield return new("tlb_shootdowns", vm.Shootdown.Flushes);
        yield return new("tlb_hit_rate", Math.Round(result.TlbHitRate, 6));
        yield return new("exceptions", result.Cpu.ExceptionsDelivered);
        yield return new("interrupts", result.Cpu.InterruptsDelivered);
        if (vm.Options.Tier == Hypervisor.Vmm.Cpu.ExecutionTier.Jit)
        {
            yield return new("jit_threshold", vm.Options.JitThreshold);
            yield return new("jit_blocks_compiled", result.Cpu.Jit.BlocksCompiled);
            yield return new("jit_compile_ms", Math.Round(result.Cpu.Jit.CompileTime.TotalMilliseconds, 3));
            yield return new("jit_instructions", result.Cpu.Jit.Instructions);
        }

        if (vm.Options.HostForkInterval is not null)
        {
            yield return new("host_forks", result.HostForks);
        }

        if (vm.Process is { HasExited: false } process)
        {
            yield return new("resident_pages", process.Stats.RssPages);
        }

        if (result.HostMemory is { } host)
        {
            yield return new("pages_on_swap", host.SwappedPages);
            yield return new("cgroup_peak_pages", host.Cgroup.PeakPages);
        }

        if (result.Ksm is { } ksm)
        {
            yield return new("ksm_merging_pages", ksm.Process.MergingPages);
            yield return new("ksm_zero_pages", ksm.Process.ZeroPages);
            yield return new("ksm_process_profit", ksm.Process.Profit);
        }

        if (vm.Options.TransparentHugePages != HostMm.ThpMode.Never && vm.Process is { } owner)
        {
            var thp = owner.ThpStats;
            yield return new("thp_fault_alloc", thp.ThpFaultAlloc);
            yield return new("thp_fault_fallback", thp.ThpFaultFallback);
            yield return new("thp_split_pmd", thp.ThpSplitPmd);
            yield return new("pages_2m", result.Mmu.Pages2M);
            yield return new("pages_4k", result.Mmu.Pages4K);
        }

        if (vm.Options.LegacyChangePte)
        {
            yield return new("change_pte_hits", result.Mmu.ChangePteHits);
            yield return new("change_pte_misses", result.Mmu.ChangePteMisses);
        }
    }

    /// <summary>The host's counters: <c>/proc/vmstat</c>'s reclaim and swap under <c>--host-mem</c>, <c>/sys/kernel/mm/ksm</c> under <c>--ksm</c>.</summary>
    public static IEnumerable<ReportCounter> OfHost(HostMemorySnapshot? memory, KsmSnapshot? ksm)
    {
        if (memory is { } host)
        {
            var r = host.Reclaim;
            yield return new("host_mem_limit_bytes", host.LimitBytes);
            yield return new("pswpout", r.Pswpout);
            yield return new("pswpin", r.Pswpin);
            yield return new("pgmajfault", r.Pgmajfault);
            yield return new("pgscan", r.Pgscan);
            yield return new("pgscan_kswapd", r.PgscanKswapd);
            yield return new("pgscan_direct", r.PgscanDirect);
            yield return new("pgsteal", r.Pgsteal);
            yield return new("pgsteal_kswapd", r.PgstealKswapd);
            yield return new("pgsteal_direct", r.PgstealDirect);
            yield return new("pgactivate", r.Pgactivate);
            yield return new("pgdeactivate", r.Pgdeactivate);
            yield return new("workingset_refault_anon", r.WorkingsetRefaultAnon);
            yield return new("workingset_activate_anon", r.WorkingsetActivateAnon);
            yield return new("workingset_restore_anon", r.WorkingsetRestoreAnon);
            yield return new("swap_ra", r.SwapRa);
            yield return new("swap_ra_hit", r.SwapRaHit);
            yield return new("allocstall", r.Allocstall);
            yield return new("swap_slots_used", host.Swap.UsedSlots);
            yield return new("swap_slots_total", host.Swap.TotalSlots);
        }

        if (ksm is { } k)
        {
            yield return new("pages_shared", k.Host.PagesShared);
            yield return new("pages_sharing", k.Host.PagesSharing);
            yield return new("pages_unshared", k.Host.PagesUnshared);
            yield return new("pages_volatile", k.Host.PagesVolatile);
            yield return new("general_profit", k.Host.GeneralProfit);
            yield return new("full_scans", k.Host.FullScans);
            yield return new("cow_ksm", k.CowKsm);
        }
    }
}

using System.Globalization;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Boot;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Machine;

/// <summary>What a <see cref="Vm"/> is built with.</summary>
public sealed record VmOptions
{
    /// <summary>The smallest guest RAM accepted (2 MiB: the image loads at 1 MiB).</summary>
    public const ulong MinMemoryBytes = 2UL << 20;

    /// <summary>The largest guest RAM accepted (below the 3.75 GiB PCI/APIC hole).</summary>
    public const ulong MaxMemoryBytes = 3UL << 30;

    /// <summary>The most vCPUs accepted.</summary>
    public const int MaxCpuCount = 64;

    /// <summary>The floor of <see cref="MinHostMemoryBytes"/>: 4 MiB (1024 pages), whatever the guest RAM.</summary>
    public const ulong MinHostMemoryFloorBytes = 4UL << 20;

    /// <summary>
    /// <see cref="MinHostMemoryBytes"/> is at least guest RAM divided by this (1/64): the pages one guest instruction
    /// and its walks touch, the boot image and the reclaimer's batches must fit with room to spare.
    /// </summary>
    public const ulong MinHostMemoryFraction = 64;

    /// <summary>The most host NUMA nodes <see cref="NumaNodes"/> accepts.</summary>
    public const int MaxNumaNodes = 8;

    /// <summary>The host's NUMA nodes when <see cref="NumaNodes"/> is not given.</summary>
    public const int DefaultNumaNodes = 2;

    /// <summary>Where the vCPUs run.</summary>
    public AcceleratorKind Accelerator { get; init; } = AcceleratorKind.Emulated;

    /// <summary>Guest RAM in bytes (a multiple of 4 KiB).</summary>
    public ulong MemoryBytes { get; init; } = 128UL << 20;

    /// <summary>vCPUs: the boot vCPU starts at the image's entry, the others on the guest's INIT-SIPI-SIPI.</summary>
    public int CpuCount { get; init; } = 1;

    /// <summary>The guest command line.</summary>
    public string CommandLine { get; init; } = string.Empty;

    /// <summary>The initial RAM disk passed as a boot module, or null.</summary>
    public InitialRamDisk? InitialRamDisk { get; init; }

    /// <summary>The boot protocol (Auto picks PVH, then 64-bit entry, then multiboot).</summary>
    public BootProtocol Protocol { get; init; } = BootProtocol.Auto;

    /// <summary>How the interpreter's vCPUs execute guest code: tier 0 only, or hot blocks compiled (emulated only).</summary>
    public Hypervisor.Vmm.Cpu.ExecutionTier Tier { get; init; } = Hypervisor.Vmm.Cpu.ExecutionTier.Jit;

    /// <summary>
    /// The number of runs after which each vCPU compiles a block under <see cref="Hypervisor.Vmm.Cpu.ExecutionTier.Jit"/>
    /// (at least 1; default <see cref="Hypervisor.Vmm.Cpu.X86Cpu.DefaultJitThreshold"/>).
    /// </summary>
    public int JitThreshold { get; init; } = Hypervisor.Vmm.Cpu.X86Cpu.DefaultJitThreshold;

    /// <summary>
    /// Where a hot block is compiled under <see cref="Hypervisor.Vmm.Cpu.ExecutionTier.Jit"/>: on a background thread
    /// while the vCPU interprets it (the default), or on the vCPU thread at once.
    /// </summary>
    public Hypervisor.Vmm.Cpu.JitCompileMode JitCompile { get; init; } = Hypervisor.Vmm.Cpu.JitCompileMode.Background;

    /// <summary>Stop after this many instructions (0: no limit; emulated only).</summary>
    public long InstructionLimit { get; init; }

    /// <summary>Stop after this much wall-clock time (null: no limit).</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>
    /// The simulated host's NUMA nodes (<c>--numa N</c>, emulated only), 1 to <see cref="MaxNumaNodes"/>. When set, host
    /// RAM is sized so that every node alone holds all guest RAM (of every VM) with its page tables: migration between
    /// nodes always finds room on the target. Null (the default): <see cref="DefaultNumaNodes"/> nodes sharing a host
    /// sized for guest RAM once, as before the option existed.
    /// </summary>
    public int? NumaNodes { get; init; }

    /// <summary>The host's node count: <see cref="NumaNodes"/>, else <see cref="DefaultNumaNodes"/>.</summary>
    public int EffectiveNumaNodes => NumaNodes ?? DefaultNumaNodes;

    /// <summary>
    /// The vCPUs' home node (<c>--vcpu-node K</c>, emulated only): the NUMA node the vCPU threads run on
    /// (<see cref="Hypervisor.HostMm.HostThread.CurrentNode"/>), 0 to <see cref="EffectiveNumaNodes"/> - 1. Faults from a
    /// vCPU allocate there under the local policy, and NUMA balancing's hinting faults move the pages a vCPU touches to
    /// it. Null (the default): the VM process's preferred node, node 0 for a VM alone (several VMs on one host prefer
    /// the nodes in turn).
    /// </summary>
    public int? VcpuNode { get; init; }

    /// <summary>
    /// The simulated host's transparent huge page mode (<c>--thp</c>, emulated only): <see cref="ThpMode.Never"/> (the
    /// default), <see cref="ThpMode.Madvise"/> (the VMM advises guest RAM <c>MADV_HUGEPAGE</c>, as QEMU does) or
    /// <see cref="ThpMode.Always"/>. With either of the last two, guest RAM is mapped at a 2 MiB-aligned host address so
    /// that gpa and hva agree modulo 2 MiB and the EPT can map each host huge page with one 2 MiB leaf.
    /// </summary>
    public ThpMode TransparentHugePages { get; init; } = ThpMode.Never;

    /// <summary>
    /// When set (emulated only), the host forks the VM's process this often while the guest runs and lets each child
    /// exit before the next (<see cref="HostForkScenario"/>): the copy-on-write protection of guest RAM under a
    /// running guest, made visible in the MMU's counters.
    /// </summary>
    public TimeSpan? HostForkInterval { get; init; }

    /// <summary>
    /// When set (emulated only), the VM's host process is placed in a memory cgroup whose <c>memory.max</c> is this
    /// many bytes (a multiple of 4 KiB from <see cref="MinHostMemoryBytes"/> to the machine's physical RAM), with swap
    /// (<see cref="Swap"/>) and a background reclaimer thread: guest RAM above the limit is swapped out and faulted
    /// back in under the running guest. Null (the default): a host roomy enough for all of guest RAM, no swap.
    /// </summary>
    public ulong? HostMemoryBytes { get; init; }

    /// <summary>
    /// The swap device when <see cref="HostMemoryBytes"/> is set; null picks <see cref="DefaultSwap"/> (a swap file in
    /// the temp folder, removed when the VM is disposed, sized to hold all of guest RAM).
    /// </summary>
    public SwapOptions? Swap { get; init; }

    /// <summary>The host's LRU policy (<c>--lru</c>); needs <see cref="HostMemoryBytes"/> when not the default.</summary>
    public LruPolicy LruPolicy { get; init; } = LruPolicy.Classic;

    /// <summary>
    /// Whether the secondary MMU's accessed bits (the EPT A bits, through the notifier's young ops) count as references
    /// when the host ages guest pages (<c>--secondary-aging</c>); needs <see cref="HostMemoryBytes"/> when off.
    /// </summary>
    public bool SecondaryAging { get; init; } = true;

    /// <summary>
    /// The probability, per page transfer, of each injected swap fault (<c>--inject-swap-errors</c>): a read I/O error,
    /// a write I/O error and a bit flipped on write (caught by the slot's checksum on read); from 0 (default, none) to
    /// below 1. A failed read stops the VM with <see cref="VmStopKind.MemoryFailure"/>; a failed write keeps the page
    /// resident. Needs <see cref="HostMemoryBytes"/>. Ignored when <see cref="Swap"/> carries its own fault injection.
    /// </summary>
    public double SwapErrorRate { get; init; }

    /// <summary>
    /// The smallest <see cref="HostMemoryBytes"/> accepted for this guest RAM: the larger of
    /// <see cref="MinHostMemoryFloorBytes"/> and 1/<see cref="MinHostMemoryFraction"/> of guest RAM, in whole pages.
    /// </summary>
    public ulong MinHostMemoryBytes => MinHostMemoryFor(MemoryBytes);

    /// <summary>The largest <see cref="HostMemoryBytes"/> accepted: the machine's physical RAM as the runtime sees it.</summary>
    public static ulong MaxHostMemoryBytes => (ulong)Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes) & ~4095UL;

    /// <summary>
    /// When the EPT MMU marks guest frames dirty in the host (emulated only; <see cref="DirtyTrackingPolicy"/>); null
    /// for the MMU's default (<see cref="DirtyTrackingPolicy.OnZap"/>).
    /// </summary>
    public DirtyTrackingPolicy? DirtyTracking { get; init; }

    /// <summary>The most pages one ksmd batch may scan (<see cref="KsmPagesToScan"/>).</summary>
    public const int MaxKsmPagesToScan = 1 << 20;

    /// <summary>The longest ksmd sleep between batches (<see cref="KsmSleepMilliseconds"/>): one minute.</summary>
    public const int MaxKsmSleepMilliseconds = 60_000;

    /// <summary>
    /// Guest RAM is mergeable and the host's KSM scanner (ksmd) runs (<c>--ksm</c>, QEMU's <c>mem-merge=on</c>): on the
    /// emulated accelerator the simulated host's <see cref="Hypervisor.HostMm.Ksm.KsmScanner"/> on its own thread; on kvm
    /// the guest RAM is madvised MERGEABLE for the real kernel's ksmd, which must be controllable
    /// (<see cref="RealKsmRunPath"/> writable).
    /// </summary>
    public bool Ksm { get; init; }

    /// <summary>
    /// Pages per ksmd batch (<c>--ksm-pages-to-scan</c>, Linux's <c>pages_to_scan</c>), from 1 to
    /// <see cref="MaxKsmPagesToScan"/>. The default, 2000, is 20 times Linux's 100 so that a few guests of 128 MiB merge
    /// within seconds rather than minutes (Linux's defaults scan at most 5,000 pages/s).
    /// </summary>
    public int KsmPagesToScan { get; init; } = 2000;

    /// <summary>ksmd's sleep between batches in milliseconds (<c>--ksm-sleep</c>, <c>sleep_millisecs</c>), 0 to <see cref="MaxKsmSleepMilliseconds"/>.</summary>
    public int KsmSleepMilliseconds { get; init; } = 20;

    /// <summary>
    /// The host issues the historical <c>change_pte</c> notifier when a KSM merge or a COW break installs a new PTE
    /// (<c>--legacy-change-pte</c>, Linux 2.6.32–6.9); emulated only.
    /// </summary>
    public bool LegacyChangePte { get; init; }

    /// <summary>
    /// The real kernel's KSM switch, which <see cref="Ksm"/> on kvm needs writable (settable for tests). Default
    /// <c>/sys/kernel/mm/ksm/run</c>.
    /// </summary>
    public static string RealKsmRunPath { get; set; } = "/sys/kernel/mm/ksm/run";

    /// <summary>
    /// The DMA copy engine at <see cref="Devices.Dma.DmaEngine.BaseAddress"/> and how it caches translations
    /// (<c>--dma-cache</c>); null: no engine. Emulated only (its copies go frame to frame in the simulated host).
    /// </summary>
    public Devices.Dma.DmaCacheMode? DmaCache { get; init; }

    /// <summary>Where the mechanisms log (one category each); null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// The run's timeline (<c>--trace FILE</c>): the secondary MMU, the notifier chain, the host's daemons and TLB
    /// flushes record into it; null records nothing. Emulated only (KVM's MMU is the kernel's).
    /// </summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Checks every rule.</summary>
    /// <exception cref="VmOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        if (MemoryBytes < MinMemoryBytes || MemoryBytes > MaxMemoryBytes || MemoryBytes % 4096 != 0)
        {
            throw new VmOptionsException(
                VmOptionRule.MemorySize,
                nameof(MemoryBytes),
                MemoryBytes,
                $"guest memory must be a multiple of 4 KiB from {MinMemoryBytes >> 20} MiB to {MaxMemoryBytes >> 20} MiB, got {MemoryBytes} bytes");
        }

        if (CpuCount < 1 || CpuCount > MaxCpuCount)
        {
            throw new VmOptionsException(VmOptionRule.CpuCount, nameof(CpuCount), CpuCount, $"vCPU count must be 1 to {MaxCpuCount}, got {CpuCount}");
        }

        if (HostForkInterval is { } interval && (interval < TimeSpan.Zero || interval > TimeSpan.FromHours(1)))
        {
            throw new VmOptionsException(VmOptionRule.HostForkInterval, nameof(HostForkInterval), interval, $"the host fork interval must be from 0 to 1 hour, got {interval}");
        }

        if (InstructionLimit < 0)
        {
            throw new VmOptionsException(VmOptionRule.InstructionLimit, nameof(InstructionLimit), InstructionLimit, $"the instruction limit must be 0 (none) or positive, got {InstructionLimit}");
        }

        if (JitThreshold < 1)
        {
            throw new VmOptionsException(VmOptionRule.JitThreshold, nameof(JitThreshold), JitThreshold, $"the JIT threshold must be at least 1, got {JitThreshold}");
        }

        if (Timeout is { } timeout && timeout <= TimeSpan.Zero)
        {
            throw new VmOptionsException(VmOptionRule.Timeout, nameof(Timeout), timeout, $"the timeout must be positive (or none), got {timeout}");
        }

        ValidateNuma();
        ValidateThp();
        ValidateHostMemory();
        if (DirtyTracking is { } policy && !Enum.IsDefined(policy))
        {
            throw new VmOptionsException(VmOptionRule.DirtyTracking, nameof(DirtyTracking), policy, $"the dirty tracking policy must be OnZap or OnMap, got {policy}");
        }

        ValidateKsm();
        if (DmaCache is { } dma && !Enum.IsDefined(dma))
        {
            throw new VmOptionsException(VmOptionRule.EmulatedOnly, nameof(DmaCache), dma, $"the DMA cache mode must be Off, Safe or Unsafe, got {dma}");
        }

        if (Accelerator != AcceleratorKind.Emulated && (InstructionLimit > 0 || HostForkInterval is not null || HostMemoryBytes is not null || DirtyTracking is not null || LegacyChangePte || DmaCache is not null))
        {
            var option = DmaCache is not null ? nameof(DmaCache)
                : InstructionLimit > 0 ? nameof(InstructionLimit)
                : HostForkInterval is not null ? nameof(HostForkInterval)
                : HostMemoryBytes is not null ? nameof(HostMemoryBytes)
                : DirtyTracking is not null ? nameof(DirtyTracking)
                : nameof(LegacyChangePte);
            throw new VmOptionsException(
                VmOptionRule.EmulatedOnly,
                option,
                Accelerator,
                $"{option} needs the emulated accelerator: {Accelerator} runs guest RAM outside the simulated host and counts no instructions");
        }
    }

    private void ValidateThp()
    {
        if (!Enum.IsDefined(TransparentHugePages))
        {
            throw new VmOptionsException(VmOptionRule.Thp, nameof(TransparentHugePages), TransparentHugePages, $"the THP mode must be Never, Madvise or Always, got {TransparentHugePages}");
        }

        if (Accelerator != AcceleratorKind.Emulated && TransparentHugePages != ThpMode.Never)
        {
            throw new VmOptionsException(
                VmOptionRule.Thp,
                nameof(TransparentHugePages),
                Accelerator,
                $"{nameof(TransparentHugePages)} needs the emulated accelerator: {Accelerator} backs guest RAM with the real kernel, whose THP mode is /sys/kernel/mm/transparent_hugepage/enabled, not ours");
        }
    }

    private void ValidateNuma()
    {
        var c = CultureInfo.InvariantCulture;
        if (NumaNodes is { } nodes && (nodes < 1 || nodes > MaxNumaNodes))
        {
            throw new VmOptionsException(VmOptionRule.Numa, nameof(NumaNodes), nodes, string.Create(c, $"the host has 1 to {MaxNumaNodes} NUMA nodes, got {nodes}"));
        }

        if (VcpuNode is { } home && (home < 0 || home >= EffectiveNumaNodes))
        {
            throw new VmOptionsException(
                VmOptionRule.Numa,
                nameof(VcpuNode),
                VcpuNode,
                string.Create(c, $"the vCPUs' home node must be one of the host's {EffectiveNumaNodes} NUMA nodes (0 to {EffectiveNumaNodes - 1}), got {VcpuNode}"));
        }

        if (Accelerator != AcceleratorKind.Emulated && (NumaNodes is not null || VcpuNode is not null))
        {
            var option = NumaNodes is not null ? nameof(NumaNodes) : nameof(VcpuNode);
            throw new VmOptionsException(
                VmOptionRule.Numa,
                option,
                Accelerator,
                $"{option} needs the emulated accelerator: {Accelerator} runs guest RAM outside the simulated host and its NUMA nodes");
        }
    }

    /// <summary>The smallest host memory accepted for <paramref name="memoryBytes"/> of guest RAM (<see cref="MinHostMemoryBytes"/>).</summary>
    /// <param name="memoryBytes">Guest RAM in bytes.</param>
    public static ulong MinHostMemoryFor(ulong memoryBytes) =>
        Math.Max(MinHostMemoryFloorBytes, ((memoryBytes / MinHostMemoryFraction) + 4095) & ~4095UL);

    /// <summary>
    /// The swap used under <see cref="HostMemoryBytes"/> when <see cref="Swap"/> is null: a new file in the temp folder
    /// (deleted with the VM) of guest RAM plus the header page, so every guest page has a slot and the guest cannot run
    /// the host out of memory.
    /// </summary>
    /// <param name="memoryBytes">Guest RAM in bytes.</param>
    public static SwapOptions DefaultSwap(ulong memoryBytes) => new()
    {
        Kind = SwapDeviceKind.File,
        SizeBytes = DefaultSwapBytes(memoryBytes),
    };

    /// <summary>The default swap size for <paramref name="memoryBytes"/> of guest RAM: that RAM in whole pages, plus the header page.</summary>
    /// <param name="memoryBytes">Guest RAM in bytes.</param>
    public static ulong DefaultSwapBytes(ulong memoryBytes) => ((memoryBytes + 4095) & ~4095UL) + 4096;

    /// <summary>
    /// The swap the host builds (emulated, with <see cref="HostMemoryBytes"/> set): <see cref="Swap"/> or the default for
    /// all <paramref name="vmCount"/> VMs' RAM (one swap area per host), with <see cref="SwapErrorRate"/>'s fault injection.
    /// </summary>
    /// <param name="vmCount">How many VMs of <see cref="MemoryBytes"/> share the host.</param>
    internal SwapOptions EffectiveSwap(int vmCount = 1)
    {
        var swap = Swap ?? DefaultSwap(MemoryBytes * (ulong)vmCount);
        if (SwapErrorRate > 0 && swap.FaultInjection is null)
        {
            swap = swap with
            {
                FaultInjection = new SwapFaultInjection
                {
                    ReadErrorRate = SwapErrorRate,
                    WriteErrorRate = SwapErrorRate,
                    CorruptWriteRate = SwapErrorRate,
                },
            };
        }

        return swap;
    }

    private void ValidateKsm()
    {
        var c = CultureInfo.InvariantCulture;
        if (KsmPagesToScan < 1 || KsmPagesToScan > MaxKsmPagesToScan)
        {
            throw new VmOptionsException(VmOptionRule.Ksm, nameof(KsmPagesToScan), KsmPagesToScan, string.Create(c, $"ksm pages_to_scan must be 1 to {MaxKsmPagesToScan}, got {KsmPagesToScan}"));
        }

        if (KsmSleepMilliseconds < 0 || KsmSleepMilliseconds > MaxKsmSleepMilliseconds)
        {
            throw new VmOptionsException(VmOptionRule.Ksm, nameof(KsmSleepMilliseconds), KsmSleepMilliseconds, string.Create(c, $"ksm sleep_millisecs must be 0 to {MaxKsmSleepMilliseconds}, got {KsmSleepMilliseconds}"));
        }

        if (Ksm && Accelerator == AcceleratorKind.Kvm && !RealKsmWritable(RealKsmRunPath))
        {
            throw new VmOptionsException(
                VmOptionRule.Ksm,
                nameof(Ksm),
                Accelerator,
                $"ksm with the kvm accelerator needs the real kernel's KSM: {RealKsmRunPath} is missing or not writable (a kernel without CONFIG_KSM, or not root)");
        }
    }

    private static bool RealKsmWritable(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            return true;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            return false;
        }
    }

    private void ValidateHostMemory()
    {
        var c = CultureInfo.InvariantCulture;
        if (!(SwapErrorRate >= 0 && SwapErrorRate < 1))
        {
            throw new VmOptionsException(
                VmOptionRule.SwapErrorRate,
                nameof(SwapErrorRate),
                SwapErrorRate,
                string.Create(c, $"the swap error rate must be a probability from 0 to below 1, got {SwapErrorRate}"));
        }

        if (!Enum.IsDefined(LruPolicy))
        {
            throw new VmOptionsException(VmOptionRule.LruPolicy, nameof(LruPolicy), LruPolicy, $"LRU policy {(int)LruPolicy} is unknown: use Classic or MultiGen");
        }

        if (HostMemoryBytes is not { } host)
        {
            var option = Swap is not null ? nameof(Swap)
                : LruPolicy != LruPolicy.Classic ? nameof(LruPolicy)
                : !SecondaryAging ? nameof(SecondaryAging)
                : SwapErrorRate > 0 ? nameof(SwapErrorRate)
                : null;
            if (option is not null)
            {
                throw new VmOptionsException(
                    VmOptionRule.NeedsHostMemory,
                    option,
                    option switch
                    {
                        nameof(Swap) => Swap,
                        nameof(LruPolicy) => LruPolicy,
                        nameof(SecondaryAging) => SecondaryAging,
                        _ => SwapErrorRate,
                    },
                    $"{option} needs {nameof(HostMemoryBytes)}: without a host memory limit nothing is reclaimed or swapped");
            }

            return;
        }

        var min = MinHostMemoryBytes;
        var max = MaxHostMemoryBytes;
        if (host % 4096 != 0 || host < min || host > max)
        {
            throw new VmOptionsException(
                VmOptionRule.HostMemorySize,
                nameof(HostMemoryBytes),
                host,
                string.Create(
                    c,
                    $"host memory must be a multiple of 4 KiB from {min >> 10} KiB (the larger of 4 MiB and 1/{MinHostMemoryFraction} of the {MemoryBytes >> 20} MiB of guest RAM) to the machine's {max >> 20} MiB of RAM, got {host} bytes"));
        }

        try
        {
            Swap?.Validate();
        }
        catch (SwapConfigurationException exception)
        {
            throw new VmOptionsException(VmOptionRule.Swap, nameof(Swap), Swap, $"swap: {exception.Message.Replace($" (Parameter '{exception.ParamName}')", string.Empty, StringComparison.Ordinal)}");
        }
    }
}

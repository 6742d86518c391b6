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

    /// <summary>Where the vCPUs run.</summary>
    public AcceleratorKind Accelerator { get; init; } = AcceleratorKind.Emulated;

    /// <summary>Guest RAM in bytes (a multiple of 4 KiB).</summary>
    public ulong MemoryBytes { get; init; } = 128UL << 20;

    /// <summary>vCPUs reported to the guest (fw_cfg, MP); only the boot vCPU runs (no INIT/SIPI is emulated).</summary>
    public int CpuCount { get; init; } = 1;

    /// <summary>The guest command line.</summary>
    public string CommandLine { get; init; } = string.Empty;

    /// <summary>The boot protocol (Auto picks PVH, then 64-bit entry, then multiboot).</summary>
    public BootProtocol Protocol { get; init; } = BootProtocol.Auto;

    /// <summary>Stop after this many instructions (0: no limit; emulated only).</summary>
    public long InstructionLimit { get; init; }

    /// <summary>Stop after this much wall-clock time (null: no limit).</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>
    /// When set (emulated only), the host forks the VM's process this often while the guest runs and lets each child
    /// exit before the next (<see cref="HostForkScenario"/>): the copy-on-write protection of guest RAM under a
    /// running guest, made visible in the MMU's counters.
    /// </summary>
    public TimeSpan? HostForkInterval { get; init; }

    /// <summary>
    /// When the EPT MMU marks guest frames dirty in the host (emulated only; <see cref="DirtyTrackingPolicy"/>); null
    /// for the MMU's default (<see cref="DirtyTrackingPolicy.OnZap"/>).
    /// </summary>
    public DirtyTrackingPolicy? DirtyTracking { get; init; }

    /// <summary>Where the mechanisms log (one category each); null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

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

        if (Timeout is { } timeout && timeout <= TimeSpan.Zero)
        {
            throw new VmOptionsException(VmOptionRule.Timeout, nameof(Timeout), timeout, $"the timeout must be positive (or none), got {timeout}");
        }

        if (DirtyTracking is { } policy && !Enum.IsDefined(policy))
        {
            throw new VmOptionsException(VmOptionRule.DirtyTracking, nameof(DirtyTracking), policy, $"the dirty tracking policy must be OnZap or OnMap, got {policy}");
        }

        if (Accelerator != AcceleratorKind.Emulated && (InstructionLimit > 0 || HostForkInterval is not null || DirtyTracking is not null))
        {
            var option = InstructionLimit > 0 ? nameof(InstructionLimit) : HostForkInterval is not null ? nameof(HostForkInterval) : nameof(DirtyTracking);
            throw new VmOptionsException(
                VmOptionRule.EmulatedOnly,
                option,
                Accelerator,
                $"{option} needs the emulated accelerator: {Accelerator} runs guest RAM outside the simulated host and counts no instructions");
        }
    }
}

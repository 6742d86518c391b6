using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The vCPU state the integer hot path never reads — the XMM registers, MXCSR, the x87 legacy area, XCR0, the MTRRs, the
/// SYSENTER and AMD MSRs, the MSR log — kept in its own object so that adding it did not move the interpreter's hot
/// fields (GPRs, RIP, lazy flags) apart inside <see cref="X86Cpu"/>: one reference instead of ~400 bytes inline.
/// </summary>
/// <remarks>Owned by one <see cref="X86Cpu"/> and, like it, by one thread.</remarks>
internal sealed class CpuExtendedState
{
    /// <summary>XMM0–XMM15.</summary>
    public XmmFile Xmm;

    /// <summary>MXCSR.</summary>
    public uint Mxcsr = X86Cpu.MxcsrDefault;

    /// <summary>The MXCSR exception flags the running SSE instruction has raised so far (zero between instructions).</summary>
    public uint SimdFlags;

    /// <summary>XCR0.</summary>
    public ulong Xcr0 = 1;

    /// <summary>Bytes 0–23 and 32–159 of the FXSAVE legacy area (x87 control/status/pointers and ST0–7), as last loaded.</summary>
    public readonly byte[] X87 = X86Cpu.NewX87State();

    /// <summary>The eight variable-range MTRR pairs (PHYSBASE, PHYSMASK).</summary>
    public readonly ulong[] MtrrVariable = new ulong[16];

    /// <summary>The eleven fixed-range MTRRs.</summary>
    public readonly ulong[] MtrrFixed = new ulong[11];

    /// <summary>MTRRdefType.</summary>
    public ulong MtrrDefType;

    /// <summary>IA32_SYSENTER_CS.</summary>
    public ulong SysenterCs;

    /// <summary>IA32_SYSENTER_ESP.</summary>
    public ulong SysenterEsp;

    /// <summary>IA32_SYSENTER_EIP.</summary>
    public ulong SysenterEip;

    /// <summary>AMD HWCR.</summary>
    public ulong AmdHwcr;

    /// <summary>What the guest's writes to IA32_TSC have added to the TSC offset in all (the TSC less virtual time).</summary>
    public long GuestTscAdjust;

    /// <summary>The host's wall-clock time when the VM's virtual time was 0 (what MSR_KVM_WALL_CLOCK_NEW reports).</summary>
    public DateTimeOffset BootWallClock = DateTimeOffset.UtcNow;

    /// <summary>MSR_KVM_WALL_CLOCK_NEW as last written.</summary>
    public ulong KvmWallClockMsr;

    /// <summary>MSR_KVM_SYSTEM_TIME_NEW as last written (bit 0: enabled).</summary>
    public ulong KvmSystemTimeMsr;

    /// <summary>The version last written to the guest's pvclock_vcpu_time_info (even between updates).</summary>
    public uint PvclockVersion;

    /// <summary>The version last written to the guest's pvclock_wall_clock (even between updates).</summary>
    public uint WallClockVersion;

    /// <summary>The (MSR, write) pairs already logged as outside the model.</summary>
    public HashSet<(uint, bool)>? LoggedMsrs;

    /// <summary>The interpreter's logger.</summary>
    public ILogger Log = NullLogger.Instance;
}

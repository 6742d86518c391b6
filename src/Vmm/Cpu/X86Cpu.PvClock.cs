using System.Buffers.Binary;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// KVM's paravirtual clock (kvmclock, "clocksource2"): the guest hands the VMM a guest-physical address through
/// MSR_KVM_WALL_CLOCK_NEW, which gets <c>struct pvclock_wall_clock</c> (the host's wall-clock time at VM boot), and
/// through MSR_KVM_SYSTEM_TIME_NEW (bit 0 enables), which gets this vCPU's <c>struct pvclock_vcpu_time_info</c>: the
/// linear map from its TSC to nanoseconds of virtual time. The interpreter's TSC runs at 1 GHz of virtual time, so the
/// map's scale is exactly 1 (<see cref="PvclockTscToSystemMul"/>, <see cref="PvclockTscShift"/>) and the structure is
/// rewritten only when the map moves: when it is enabled and when the guest writes IA32_TSC.
/// </summary>
/// <remarks>
/// <para>Virtual time is <see cref="VirtualNanoseconds"/>: the TSC less what the guest's IA32_TSC writes added, so it
/// never jumps when the guest moves its TSC. Invariant while enabled: the guest's pvclock maps <see cref="Tsc"/> to
/// <see cref="VirtualNanoseconds"/> exactly.</para>
/// <para>Versions follow the pvclock protocol: odd while an update is being written, even once it is complete.</para>
/// <para>Each vCPU's virtual time is its own retired instructions (plus halted time); vCPUs' clocks are not
/// synchronised with each other.</para>
/// </remarks>
public sealed partial class X86Cpu
{
    internal const uint MsrKvmWallClockNew = 0x4B56_4D00;
    internal const uint MsrKvmSystemTimeNew = 0x4B56_4D01;

    /// <summary>pvclock_vcpu_time_info.tsc_to_system_mul: 2³¹, with <see cref="PvclockTscShift"/> 1 a scale of exactly 1 ns per tick.</summary>
    public const uint PvclockTscToSystemMul = 0x8000_0000;

    /// <summary>pvclock_vcpu_time_info.tsc_shift.</summary>
    public const sbyte PvclockTscShift = 1;

    /// <summary>PVCLOCK_TSC_STABLE_BIT in pvclock_vcpu_time_info.flags.</summary>
    public const byte PvclockTscStableBit = 1 << 0;

    /// <summary>Size of struct pvclock_vcpu_time_info.</summary>
    public const int PvclockVcpuTimeInfoSize = 32;

    /// <summary>Size of struct pvclock_wall_clock.</summary>
    public const int PvclockWallClockSize = 12;

    private const ulong KvmSystemTimeEnable = 1;

    /// <summary>This vCPU's virtual time in nanoseconds: the TSC at 1 GHz, less what the guest's writes to IA32_TSC moved it.</summary>
    /// <remarks>Readable from other threads (the ACPI PM timer runs on the boot vCPU's); the two fields it adds are read without a lock.</remarks>
    public long VirtualNanoseconds => _instructions + _tscOffset - _ext.GuestTscAdjust;

    /// <summary>The host's wall-clock time at which the VM's virtual time was 0 (set before the VM runs; the same for every vCPU).</summary>
    public DateTimeOffset BootWallClock
    {
        get => _ext.BootWallClock;
        set => _ext.BootWallClock = value;
    }

    /// <summary>True while MSR_KVM_SYSTEM_TIME_NEW is enabled (bit 0).</summary>
    public bool KvmClockEnabled => (_ext.KvmSystemTimeMsr & KvmSystemTimeEnable) != 0;

    /// <summary>A write of IA32_TSC: moves the TSC offset, and the guest's pvclock with it.</summary>
    private void WriteTsc(long value)
    {
        var offset = value - _instructions;
        _ext.GuestTscAdjust += offset - _tscOffset;
        _tscOffset = offset;
        if (KvmClockEnabled)
        {
            WritePvclockTimeInfo();
        }
    }

    private void WriteKvmSystemTimeMsr(ulong value)
    {
        _ext.KvmSystemTimeMsr = value;
        if (KvmClockEnabled)
        {
            WritePvclockTimeInfo();
        }
    }

    /// <summary>MSR_KVM_WALL_CLOCK_NEW: writes pvclock_wall_clock {version, sec, nsec} of <see cref="BootWallClock"/> at the GPA written.</summary>
    private void WriteKvmWallClockMsr(ulong value)
    {
        _ext.KvmWallClockMsr = value;
        var boot = BootWallClock.ToUnixTimeMilliseconds() * 1_000_000L + (BootWallClock.UtcTicks % TimeSpan.TicksPerMillisecond * 100);
        var version = _ext.WallClockVersion + 1;
        Span<byte> clock = stackalloc byte[PvclockWallClockSize];
        clock.Clear(); // X86Cpu skips locals init: the padding must read 0
        BinaryPrimitives.WriteUInt32LittleEndian(clock, version);
        if (!WriteGuestPhysical(value, clock[..4]))
        {
            return;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(clock[4..], (uint)(boot / 1_000_000_000L));
        BinaryPrimitives.WriteUInt32LittleEndian(clock[8..], (uint)(boot % 1_000_000_000L));
        WriteGuestPhysical(value + 4, clock[4..]);
        version++;
        BinaryPrimitives.WriteUInt32LittleEndian(clock, version);
        WriteGuestPhysical(value, clock[..4]);
        _ext.WallClockVersion = version;
    }

    /// <summary>Writes this vCPU's pvclock_vcpu_time_info at the enabled GPA: the TSC and virtual time now, scale 1, TSC stable.</summary>
    private void WritePvclockTimeInfo()
    {
        var gpa = _ext.KvmSystemTimeMsr & ~KvmSystemTimeEnable;
        var version = _ext.PvclockVersion + 1;
        Span<byte> info = stackalloc byte[PvclockVcpuTimeInfoSize];
        info.Clear(); // X86Cpu skips locals init: pad0 and the trailing pad must read 0
        BinaryPrimitives.WriteUInt32LittleEndian(info, version);
        if (!WriteGuestPhysical(gpa, info[..4]))
        {
            return;
        }

        BinaryPrimitives.WriteUInt64LittleEndian(info[8..], (ulong)Tsc);
        BinaryPrimitives.WriteUInt64LittleEndian(info[16..], (ulong)VirtualNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(info[24..], PvclockTscToSystemMul);
        info[28] = (byte)PvclockTscShift;
        // Several vCPUs have clocks of their own (each its retired instructions): only one vCPU may promise a stable TSC,
        // so Linux keeps its cross-CPU monotonic clamp otherwise.
        info[29] = _apic.Router?.Apics.Count > 1 ? (byte)0 : PvclockTscStableBit;
        WriteGuestPhysical(gpa + 4, info[4..]);
        version++;
        BinaryPrimitives.WriteUInt32LittleEndian(info, version);
        WriteGuestPhysical(gpa, info[..4]);
        _ext.PvclockVersion = version;
    }

    /// <summary>
    /// Writes <paramref name="data"/> at guest-physical <paramref name="gpa"/> on the guest's behalf (as KVM's
    /// kvm_write_guest): through EPT (faulting pages in, setting A/D), telling the code-page watcher about a store to a
    /// page holding decoded code. False, with nothing written, when a byte is outside RAM (MMIO, or above the 4 GiB the
    /// paging-off view reaches): KVM ignores such addresses too.
    /// </summary>
    private unsafe bool WriteGuestPhysical(ulong gpa, ReadOnlySpan<byte> data) // unsafe: copies through the walker's host pointer.
    {
        const ulong physicalLimit = 1UL << 32;
        if (gpa >= physicalLimit || (ulong)data.Length > physicalLimit - gpa)
        {
            return false;
        }

        var view = PagingContext.PagingOff;
        for (var offset = 0; offset < data.Length;)
        {
            var at = gpa + (ulong)offset;
            var chunk = (int)Math.Min((ulong)(data.Length - offset), Hypervisor.Notifier.Paging.PageSize - (at & (Hypervisor.Notifier.Paging.PageSize - 1)));
            if (!_mmu.Walker.Translate(view, new Gva(at), GuestAccess.Write).IsOk)
            {
                return false;
            }

            offset += chunk;
        }

        for (var offset = 0; offset < data.Length;)
        {
            var at = gpa + (ulong)offset;
            var chunk = (int)Math.Min((ulong)(data.Length - offset), Hypervisor.Notifier.Paging.PageSize - (at & (Hypervisor.Notifier.Paging.PageSize - 1)));
            var result = _mmu.Walker.Translate(view, new Gva(at), GuestAccess.Write);
            if (!result.IsOk)
            {
                return false;
            }

            if (_mmu.WriteMonitor is { } monitor && monitor.IsWatched(result.Gpa.Gfn))
            {
                monitor.OnWatchedWrite(result.Gpa);
            }

            data.Slice(offset, chunk).CopyTo(new Span<byte>(result.Host, chunk));
            offset += chunk;
        }

        return true;
    }
}

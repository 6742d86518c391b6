using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The MSR model, shaped after KVM's for a VM without a virtual PMU: the TSC and TSC_AUX, the APIC base, EFER and the
/// SYSCALL/SYSENTER MSRs, FS/GS/kernel-GS bases, PAT (reserved memory types #GP), the MTRRs (capabilities, default
/// type, 11 fixed and 8 variable pairs with their reserved-bit rules), MISC_ENABLE, FEATURE_CONTROL (locked), ARCH_CAPABILITIES (read-only:
/// no speculation, so not vulnerable), the microcode revision, KVM's kvmclock MSRs (MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME_NEW), and the Intel and AMD performance-counter ranges (read 0; a write of 0 is accepted, anything
/// else is #GP). Any other MSR is #GP, with one warning per MSR and direction in the log (category <see cref="LogCategory"/>).
/// </summary>
/// <remarks>Invariant: every stored MTRR and PAT value passed its validity check; a refused WRMSR changes nothing.</remarks>
public sealed partial class X86Cpu
{
    /// <summary>The logging category of the interpreter (MSRs outside the model).</summary>
    public const string LogCategory = "Hypervisor.Vmm.Cpu";

    internal const uint MsrTsc = 0x10;
    internal const uint MsrPlatformId = 0x17;
    internal const uint MsrApicBase = 0x1B;
    internal const uint MsrFeatureControl = 0x3A;
    internal const uint MsrBiosUpdateTrigger = 0x79;
    internal const uint MsrMicrocodeRevision = 0x8B;
    internal const uint MsrMtrrCap = 0xFE;
    internal const uint MsrArchCapabilities = 0x10A;
    internal const uint MsrSysenterCs = 0x174;
    internal const uint MsrSysenterEsp = 0x175;
    internal const uint MsrSysenterEip = 0x176;
    internal const uint MsrMiscEnable = 0x1A0;
    internal const uint MsrMtrrPhysBase0 = 0x200;
    internal const uint MsrPat = 0x277;
    internal const uint MsrMtrrDefType = 0x2FF;
    internal const uint MsrEfer = 0xC000_0080;
    internal const uint MsrStar = 0xC000_0081;
    internal const uint MsrLstar = 0xC000_0082;
    internal const uint MsrCstar = 0xC000_0083;
    internal const uint MsrSfmask = 0xC000_0084;
    internal const uint MsrFsBase = 0xC000_0100;
    internal const uint MsrGsBase = 0xC000_0101;
    internal const uint MsrKernelGsBase = 0xC000_0102;
    internal const uint MsrTscAux = 0xC000_0103;
    internal const uint MsrAmdHwcr = 0xC001_0015;

    /// <summary>MTRRcap: 8 variable ranges, fixed ranges, write-combining; no SMRR.</summary>
    internal const ulong MtrrCapabilities = 8 | (1 << 8) | (1 << 10);

    /// <summary>FEATURE_CONTROL as the VMM leaves it: locked, VMX off (no nested virtualisation is offered).</summary>
    internal const ulong FeatureControlLocked = 1;

    private const ulong EferSce = 1UL << 0;
    private const ulong EferNxe = 1UL << 11;
    private const int VariableMtrrPairs = 8;

    // The fixed-range MTRRs in order: 64K_00000, 16K_80000, 16K_A0000, 4K_C0000 … 4K_F8000.
    private static readonly uint[] FixedMtrrs = [0x250, 0x258, 0x259, 0x268, 0x269, 0x26A, 0x26B, 0x26C, 0x26D, 0x26E, 0x26F];


    /// <summary>Where an access to an MSR outside the model is reported (one warning per MSR and direction).</summary>
    public ILogger Log
    {
        get => _ext.Log;
        set => _ext.Log = value ?? NullLogger.Instance;
    }

    private ulong ReadMsr(uint msr)
    {
        if (TryReadApicMsr(msr, out var apicValue)) { return apicValue; }
        switch (msr)
        {
            case MsrTsc: return (ulong)(_instructions + _tscOffset);
            case MsrPlatformId: return 0;
            case MsrFeatureControl: return FeatureControlLocked;
            case MsrMicrocodeRevision: return 0;
            case MsrMtrrCap: return MtrrCapabilities;
            case MsrArchCapabilities: return CpuidModel.ArchCapabilities;
            case MsrSysenterCs: return _ext.SysenterCs;
            case MsrSysenterEsp: return _ext.SysenterEsp;
            case MsrSysenterEip: return _ext.SysenterEip;
            case MsrMiscEnable: return _miscEnable;
            case >= MsrMtrrPhysBase0 and < MsrMtrrPhysBase0 + (2 * VariableMtrrPairs): return _ext.MtrrVariable[msr - MsrMtrrPhysBase0];
            case MsrPat: return _pat;
            case MsrMtrrDefType: return _ext.MtrrDefType;
            case MsrEfer: return _efer;
            case MsrStar: return _star;
            case MsrLstar: return _lstar;
            case MsrCstar: return _cstar;
            case MsrSfmask: return _sfmask;
            case MsrFsBase: return _segments[(int)SegmentRegister.Fs].Base;
            case MsrGsBase: return _segments[(int)SegmentRegister.Gs].Base;
            case MsrKernelGsBase: return _kernelGsBase;
            case MsrTscAux: return _tscAux;
            case MsrAmdHwcr: return _ext.AmdHwcr;
            case MsrKvmWallClockNew: return _ext.KvmWallClockMsr;
            case MsrKvmSystemTimeNew: return _ext.KvmSystemTimeMsr;
            case 0xC001_0010 or 0xC001_001F or 0xC001_0055 or 0xC001_0058 or 0xC001_0112 or 0xC001_0113 or 0xC001_102A:
                // SYSCFG, NB_CFG, INT_PENDING_MSG, MMIO_CONF_BASE, TSEG base/mask, BU_CFG2: KVM reads them as 0.
                return 0;
            default:
                if (FixedMtrrIndex(msr) is var index and >= 0)
                {
                    return _ext.MtrrFixed[index];
                }

                if (IsPerformanceCounterMsr(msr))
                {
                    return 0;
                }

                return UnmodelledMsr(msr, write: false, 0);
        }
    }

    private void WriteMsr(uint msr, ulong value)
    {
        if (TryWriteApicMsr(msr, value)) { return; }
        switch (msr)
        {
            case MsrTsc: WriteTsc((long)value); return;
            case MsrKvmWallClockNew: WriteKvmWallClockMsr(value); return;
            case MsrKvmSystemTimeNew: WriteKvmSystemTimeMsr(value); return;
            case MsrBiosUpdateTrigger: return;
            case MsrMicrocodeRevision: return;
            case MsrSysenterCs: _ext.SysenterCs = value & 0xFFFF_FFFF; return;
            case MsrSysenterEsp: _ext.SysenterEsp = RequireCanonical(msr, value); return;
            case MsrSysenterEip: _ext.SysenterEip = RequireCanonical(msr, value); return;
            case MsrMiscEnable: _miscEnable = value; return;
            case >= MsrMtrrPhysBase0 and < MsrMtrrPhysBase0 + (2 * VariableMtrrPairs):
            {
                var isMask = ((msr - MsrMtrrPhysBase0) & 1) != 0;
                var reserved = isMask ? 0x7FFUL | PhysicalAddressReserved : 0xF00UL | PhysicalAddressReserved;
                if ((value & reserved) != 0 || (!isMask && !IsMtrrType(value & 0xFF)))
                {
                    RefuseMsrWrite(msr, value, isMask ? "a reserved bit of PHYSMASK" : "a reserved bit or memory type of PHYSBASE");
                }

                _ext.MtrrVariable[msr - MsrMtrrPhysBase0] = value;
                return;
            }

            case MsrPat:
                for (var n = 0; n < 8; n++)
                {
                    var type = (value >> (8 * n)) & 0xFF;
                    if (type is not (0 or 1 or 4 or 5 or 6 or 7))
                    {
                        RefuseMsrWrite(msr, value, $"PAT entry {n} is the reserved memory type {type}");
                    }
                }

                _pat = value;
                return;
            case MsrMtrrDefType:
                if ((value & ~0xCFFUL) != 0 || !IsMtrrType(value & 0xFF))
                {
                    RefuseMsrWrite(msr, value, "a reserved bit or memory type of MTRRdefType");
                }

                _ext.MtrrDefType = value;
                return;
            case MsrEfer:
            {
                if ((value & ~(EferSce | EferLme | EferLma | EferNxe)) != 0
                    || ((_cr0 & Cr0Pg) != 0 && ((value ^ _efer) & EferLme) != 0))
                {
                    RaiseFault(ExceptionVector.GeneralProtection, 0);
                }

                _efer = (value & ~EferLma) | (_efer & EferLma);
                UpdatePaging();
                return;
            }

            case MsrStar: _star = value; return;
            case MsrLstar: _lstar = RequireCanonical(msr, value); return;
            case MsrCstar: _cstar = RequireCanonical(msr, value); return;
            case MsrSfmask: _sfmask = value & 0xFFFF_FFFF; return;
            case MsrFsBase: _segments[(int)SegmentRegister.Fs].Base = RequireCanonical(msr, value); return;
            case MsrGsBase: _segments[(int)SegmentRegister.Gs].Base = RequireCanonical(msr, value); return;
            case MsrKernelGsBase: _kernelGsBase = RequireCanonical(msr, value); return;
            case MsrTscAux:
                if ((value >> 32) != 0)
                {
                    RefuseMsrWrite(msr, value, "TSC_AUX bits 63:32 are reserved");
                }

                _tscAux = value;
                return;
            case MsrAmdHwcr:
                // KVM ignores the TLB-cache, flush-filter and IGNNE bits and accepts 0; anything else is unimplemented.
                if ((value & ~(0x8UL | 0x40UL | 0x100UL)) != 0)
                {
                    RefuseMsrWrite(msr, value, "HWCR bits other than the ignored ones");
                }

                _ext.AmdHwcr = value;
                return;
            case MsrFeatureControl:
                RefuseMsrWrite(msr, value, "FEATURE_CONTROL is locked");
                return;
            case MsrMtrrCap:
                RefuseMsrWrite(msr, value, "MTRRcap is read-only");
                return;
            case MsrArchCapabilities:
                RefuseMsrWrite(msr, value, "ARCH_CAPABILITIES is read-only");
                return;
            default:
                if (FixedMtrrIndex(msr) is var index and >= 0)
                {
                    for (var n = 0; n < 8; n++)
                    {
                        if (!IsMtrrType((value >> (8 * n)) & 0xFF))
                        {
                            RefuseMsrWrite(msr, value, $"fixed-range MTRR byte {n} is not a memory type");
                        }
                    }

                    _ext.MtrrFixed[index] = value;
                    return;
                }

                if (IsPerformanceCounterMsr(msr))
                {
                    if (value != 0)
                    {
                        RefuseMsrWrite(msr, value, "no virtual PMU: performance-counter MSRs accept only 0");
                    }

                    return;
                }

                UnmodelledMsr(msr, write: true, value);
                return;
        }
    }

    // Bits 48–63 of an MTRR base or mask: above the 48-bit physical address width CPUID reports.
    private const ulong PhysicalAddressReserved = ~((1UL << 48) - 1);

    private static bool IsMtrrType(ulong type) => type is 0 or 1 or 4 or 5 or 6;

    private static int FixedMtrrIndex(uint msr) => Array.IndexOf(FixedMtrrs, msr);

    /// <summary>The Intel architectural and AMD (K7 and family 15h) performance-monitoring MSRs.</summary>
    private static bool IsPerformanceCounterMsr(uint msr) =>
        msr is >= 0xC1 and <= 0xC8            // IA32_PMC0–7 (P6 PERFCTR0/1)
            or >= 0x186 and <= 0x18D          // IA32_PERFEVTSEL0–7
            or >= 0x309 and <= 0x30B          // IA32_FIXED_CTR0–2
            or >= 0x38D and <= 0x390          // FIXED_CTR_CTRL, PERF_GLOBAL_STATUS/CTRL/OVF_CTRL
            or >= 0x4C1 and <= 0x4C8          // IA32_A_PMC0–7 (full width)
            or >= 0xC001_0000 and <= 0xC001_0007   // K7 PERFEVTSEL0–3, PERFCTR0–3
            or >= 0xC001_0200 and <= 0xC001_020B;  // F15H PERF_CTL0–5/PERF_CTR0–5

    private ulong RequireCanonical(uint msr, ulong value)
    {
        if ((ulong)(((long)value << 16) >> 16) != value)
        {
            RefuseMsrWrite(msr, value, "the address is not canonical");
        }

        return value;
    }

    private void RefuseMsrWrite(uint msr, ulong value, string why)
    {
        _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: WRMSR of MSR 0x{msr:x} = 0x{value:x}: {why}";
        RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
    }

    private ulong UnmodelledMsr(uint msr, bool write, ulong value)
    {
        _lastFaultDetail = write
            ? $"#GP at RIP 0x{_currentIp:x}: WRMSR of MSR 0x{msr:x} = 0x{value:x}, which the interpreter does not model"
            : $"#GP at RIP 0x{_currentIp:x}: RDMSR of MSR 0x{msr:x}, which the interpreter does not model";
        if (Log.IsEnabled(LogLevel.Warning) && (_ext.LoggedMsrs ??= []).Add((msr, write)))
        {
            CpuLog.UnmodelledMsr(Log, VcpuId, write ? "WRMSR" : "RDMSR", msr, _currentIp);
        }

        return RaiseFault<ulong>(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
    }
}

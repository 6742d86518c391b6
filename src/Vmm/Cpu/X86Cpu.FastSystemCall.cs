using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// SYSCALL/SYSRET (STAR, LSTAR, SFMASK; EFER.SCE) and SYSENTER/SYSEXIT (SYSENTER_CS/ESP/EIP), which load flat
/// CS/SS descriptor caches without reading the GDT as the SDM specifies; STAC/CLAC; CLFLUSH/CLFLUSHOPT/CLWB.
/// </summary>
/// <remarks>SYSCALL and SYSRET follow Intel: both are #UD outside 64-bit mode (AMD also allows them in legacy and
/// compatibility mode through CSTAR). SYSRET to a non-canonical RCX is #GP(0) at CPL 0, as on Intel.</remarks>
public sealed unsafe partial class X86Cpu // unsafe: the cache-line flush translates without reading (a host pointer out).
{
    // Flat segment caches: 64-bit code (L), 32-bit code (D/B), data (D/B), each present, S, G, limit 4 GiB - 1.
    private const ushort Code64Attributes = SegmentState.AttrP | SegmentState.AttrS | SegmentState.AttrL | SegmentState.AttrG | 0xB;
    private const ushort Code32Attributes = SegmentState.AttrP | SegmentState.AttrS | SegmentState.AttrDb | SegmentState.AttrG | 0xB;
    private const ushort DataAttributes = SegmentState.AttrP | SegmentState.AttrS | SegmentState.AttrDb | SegmentState.AttrG | 0x3;

    private void ExecuteFastSystemCall(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        switch (d.Op)
        {
            case Op.Syscall: SystemCall(ref d); return;
            case Op.Sysret: SystemReturn(ref d); return;
            case Op.Sysenter: SystemEnter(); return;
            case Op.Sysexit: SystemExit(ref d); return;
            case Op.Stac:
            case Op.Clac:
                if (Cpl != 0)
                {
                    RaiseUndefined(ref d, "STAC/CLAC outside CPL 0");
                }

                _rflags = d.Op == Op.Stac ? _rflags | FlagAc : _rflags & ~FlagAc;
                UpdatePaging();
                return;
            case Op.CacheLineFlush:
            {
                // Checked like a one-byte read (#PF, #GP, EPT), with no access: an MMIO line is flushed without a device read.
                var linear = Linear(ref d);
                if (!_mmu.TryTranslate(new Gva(linear), GuestAccess.Read, out _, out var failure) && failure.Status != TranslationStatus.EptMmio)
                {
                    RaiseTranslationFault(failure, linear, (SegmentRegister)d.Segment);
                }

                return;
            }

            default:
                RaiseUndefined(ref d, $"'{i}' is not implemented by the interpreter");
                return;
        }
    }

    private void SystemCall(ref DecodedInstruction d)
    {
        if ((_efer & EferSce) == 0 || _bitness != 64)
        {
            RaiseUndefined(ref d, (_efer & EferSce) == 0 ? "SYSCALL with EFER.SCE clear" : "SYSCALL outside 64-bit mode");
        }

        var selector = (ushort)((_star >> 32) & 0xFFFC);
        var flags = GetRflags();
        Gpr(1) = _rip;
        Gpr(11) = flags & ~FlagRf;
        SetRflags(flags & ~_sfmask & ~FlagRf);
        LoadFlat(selector, (ushort)(selector + 8), Code64Attributes, dpl: 0);
        _rip = _lstar;
    }

    private void SystemReturn(ref DecodedInstruction d)
    {
        if ((_efer & EferSce) == 0 || _bitness != 64)
        {
            RaiseUndefined(ref d, (_efer & EferSce) == 0 ? "SYSRET with EFER.SCE clear" : "SYSRET outside 64-bit mode");
        }

        RequireCpl0();
        var to64 = d.Instruction.Code == Code.Sysretq;
        var target = to64 ? Gpr(1) : (uint)Gpr(1);
        if (to64 && (ulong)(((long)target << 16) >> 16) != target)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: SYSRET to the non-canonical RCX 0x{target:x}";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        var baseSelector = (ushort)(_star >> 48);
        SetRflags((Gpr(11) & 0x3C_7FD7) | 2);
        var cs = (ushort)((to64 ? baseSelector + 16 : baseSelector) | 3);
        LoadFlat(cs, (ushort)((baseSelector + 8) | 3), to64 ? Code64Attributes : Code32Attributes, dpl: 3);
        _rip = target;
    }

    private void SystemEnter()
    {
        var selector = (ushort)(_ext.SysenterCs & 0xFFFC);
        if (selector == 0)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: SYSENTER with SYSENTER_CS 0";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        var longMode = (_efer & EferLma) != 0;
        SetRflags(GetRflags() & ~(FlagIf | FlagRf | (1UL << 17)));
        LoadFlat(selector, (ushort)(selector + 8), longMode ? Code64Attributes : Code32Attributes, dpl: 0);
        Gpr(4) = longMode ? _ext.SysenterEsp : (uint)_ext.SysenterEsp;
        _rip = longMode ? _ext.SysenterEip : (uint)_ext.SysenterEip;
    }

    private void SystemExit(ref DecodedInstruction d)
    {
        var selector = (ushort)(_ext.SysenterCs & 0xFFFC);
        if (selector == 0 || Cpl != 0)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: SYSEXIT at CPL {Cpl} with SYSENTER_CS 0x{_ext.SysenterCs:x}";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        var to64 = d.Instruction.Code == Code.Sysexitq;
        var target = to64 ? Gpr(2) : (uint)Gpr(2);
        var stack = to64 ? Gpr(1) : (uint)Gpr(1);
        if (to64 && ((ulong)(((long)target << 16) >> 16) != target || (ulong)(((long)stack << 16) >> 16) != stack))
        {
            RaiseFault(ExceptionVector.GeneralProtection, 0, $"#GP at RIP 0x{_currentIp:x}: SYSEXIT to a non-canonical RIP or RSP");
        }

        var cs = (ushort)((selector + (to64 ? 32 : 16)) | 3);
        var ss = (ushort)((selector + (to64 ? 40 : 24)) | 3);
        LoadFlat(cs, ss, to64 ? Code64Attributes : Code32Attributes, dpl: 3);
        Gpr(4) = stack;
        _rip = target;
    }

    /// <summary>Loads CS and SS with flat caches of privilege <paramref name="dpl"/> (no GDT access), then the mode, stack size and paging context.</summary>
    private void LoadFlat(ushort cs, ushort ss, ushort codeAttributes, int dpl)
    {
        _segments[(int)SegmentRegister.Cs] = new SegmentState { Selector = cs, Base = 0, Limit = 0xFFFF_FFFF, Attributes = (ushort)(codeAttributes | (dpl << 5)) };
        _segments[(int)SegmentRegister.Ss] = new SegmentState { Selector = ss, Base = 0, Limit = 0xFFFF_FFFF, Attributes = (ushort)(DataAttributes | (dpl << 5)) };
        UpdateMode();
        UpdateStackSize();
        UpdatePaging();
    }
}

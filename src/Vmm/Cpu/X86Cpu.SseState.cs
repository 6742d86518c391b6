using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The extended-state instructions: LDMXCSR/STMXCSR, FXSAVE/FXRSTOR (512-byte legacy area) and XSAVE/XRSTOR/XGETBV/
/// XSETBV over XCR0 with the x87 and SSE components (the standard, non-compacted format).
/// </summary>
/// <remarks>
/// The interpreter executes no x87 instruction, so the x87 state is only what FXRSTOR/XRSTOR loaded (or its init
/// values: FCW 0x37F, everything else zero), kept as the legacy area's bytes and written back unchanged. Invariant:
/// XCR0 always has bit 0 (x87) and never a bit outside <see cref="CpuidModel.SupportedXcr0"/>.
/// </remarks>
public sealed partial class X86Cpu
{
    /// <summary>The legacy area's size (FXSAVE, and the first part of the XSAVE area).</summary>
    internal const int LegacyAreaBytes = 512;

    private const int X87HeaderBytes = 24;
    private const int X87RegisterOffset = 32;
    private const int X87RegisterBytes = 128;
    private const int XmmAreaOffset = 160;
    private const int XsaveHeaderOffset = 512;

    // Bytes 0–23 (FCW, FSW, FTW, FOP, FIP, FDP) and 32–159 (ST0–7) of the legacy area, as last loaded.

    /// <summary>XCR0 (the enabled XSAVE components).</summary>
    public ulong Xcr0 => _ext.Xcr0;

    /// <summary>The x87 part of the legacy area in its init state: FCW 0x37F, everything else zero.</summary>
    internal static byte[] NewX87State()
    {
        var state = new byte[X87RegisterOffset + X87RegisterBytes];
        state[0] = 0x7F;
        state[1] = 0x03;
        return state;
    }

    private void ExecuteSseState(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        switch (i.Mnemonic)
        {
            case Mnemonic.Ldmxcsr:
            {
                RequireSse(ref d);
                var value = (uint)ReadMemory(Linear(ref d), 4);
                LoadMxcsr(value);
                return;
            }

            case Mnemonic.Stmxcsr:
                RequireSse(ref d);
                WriteMemory(Linear(ref d), 4, _ext.Mxcsr);
                return;
            case Mnemonic.Fxsave: case Mnemonic.Fxsave64:
                RequireFpuAvailable(ref d);
                SaveLegacyArea(AlignedArea(ref d, 16), x87: true, sse: true);
                return;
            case Mnemonic.Fxrstor: case Mnemonic.Fxrstor64:
            {
                RequireFpuAvailable(ref d);
                var linear = AlignedArea(ref d, 16);
                LoadMxcsr((uint)ReadMemory(linear + 24, 4));
                RestoreLegacyArea(linear, x87: true, sse: true);
                return;
            }

            case Mnemonic.Xsave: case Mnemonic.Xsave64:
            {
                RequireXsave(ref d);
                var linear = AlignedArea(ref d, 64);
                var rfbm = _ext.Xcr0 & ((Gpr(2) << 32) | (uint)Gpr(0));
                SaveLegacyArea(linear, x87: (rfbm & 1) != 0, sse: (rfbm & 2) != 0);
                var header = linear + XsaveHeaderOffset;
                var xstateBv = ReadMemory(header, 8);
                WriteMemory(header, 8, (xstateBv & ~rfbm) | rfbm);
                return;
            }

            case Mnemonic.Xrstor: case Mnemonic.Xrstor64:
                RequireXsave(ref d);
                RestoreExtendedArea(ref d, AlignedArea(ref d, 64));
                return;
            case Mnemonic.Xgetbv:
                RequireXsave(ref d);
                if ((uint)Gpr(1) != 0)
                {
                    RaiseFault(ExceptionVector.GeneralProtection, 0, $"#GP at RIP 0x{_currentIp:x}: XGETBV of XCR{(uint)Gpr(1)}, which does not exist");
                }

                SetEdxEax(_ext.Xcr0);
                return;
            case Mnemonic.Xsetbv:
            {
                RequireXsave(ref d);
                var value = ((Gpr(2) & 0xFFFF_FFFF) << 32) | (Gpr(0) & 0xFFFF_FFFF);
                if (Cpl != 0 || (uint)Gpr(1) != 0 || (value & 1) == 0 || (value & ~CpuidModel.SupportedXcr0) != 0)
                {
                    _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: XSETBV of XCR{(uint)Gpr(1)} = 0x{value:x} (CPL {Cpl}; XCR0 may hold x87 and SSE only, x87 always)";
                    RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
                }

                _ext.Xcr0 = value;
                return;
            }

            default:
                RaiseUndefined(ref d, $"'{i}' is not implemented by the interpreter");
                return;
        }
    }

    /// <summary>MXCSR from a guest load (LDMXCSR, FXRSTOR, XRSTOR): a reserved bit set is #GP(0).</summary>
    private void LoadMxcsr(uint value)
    {
        if ((value & ~MxcsrMask) != 0)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x}: MXCSR value 0x{value:x} sets reserved bits (MXCSR_MASK 0x{MxcsrMask:x})";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        _ext.Mxcsr = value;
    }

    /// <summary>FXSAVE/FXRSTOR: #NM when CR0.TS or CR0.EM is set (no #UD for CR4.OSFXSR, which only decides whether XMM state is included).</summary>
    private void RequireFpuAvailable(ref DecodedInstruction d)
    {
        if ((_cr0 & (Cr0Ts | Cr0Em)) != 0)
        {
            _lastFaultDetail = $"#NM at RIP 0x{_currentIp:x} ({d.Instruction}): CR0.TS or CR0.EM is set";
            RaiseFault(ExceptionVector.DeviceNotAvailable, null, _lastFaultDetail);
        }
    }

    /// <summary>XSAVE/XRSTOR/XGETBV/XSETBV: #UD without CR4.OSXSAVE, #NM with CR0.TS (XSAVE/XRSTOR only).</summary>
    private void RequireXsave(ref DecodedInstruction d)
    {
        if ((_cr4 & Cr4Osxsave) == 0)
        {
            RaiseUndefined(ref d, "an XSAVE-family instruction with CR4.OSXSAVE clear");
        }

        if ((_cr0 & Cr0Ts) != 0 && d.Instruction.Mnemonic is not (Mnemonic.Xgetbv or Mnemonic.Xsetbv))
        {
            _lastFaultDetail = $"#NM at RIP 0x{_currentIp:x} ({d.Instruction}): CR0.TS is set";
            RaiseFault(ExceptionVector.DeviceNotAvailable, null, _lastFaultDetail);
        }
    }

    private ulong AlignedArea(ref DecodedInstruction d, uint alignment)
    {
        var linear = Linear(ref d);
        if ((linear & (alignment - 1)) != 0)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x} ({d.Instruction}): the save area at 0x{linear:x} is not {alignment}-byte aligned";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        return linear;
    }

    private int XmmRegisterCount => _bitness == 64 ? 16 : 8;

    private void SaveLegacyArea(ulong linear, bool x87, bool sse)
    {
        if (x87)
        {
            for (var n = 0; n < X87HeaderBytes; n += 8)
            {
                WriteMemory(linear + (ulong)n, 8, BinaryPrimitives.ReadUInt64LittleEndian(_ext.X87.AsSpan(n)));
            }

            for (var n = X87RegisterOffset; n < X87RegisterOffset + X87RegisterBytes; n += 8)
            {
                WriteMemory(linear + (ulong)n, 8, BinaryPrimitives.ReadUInt64LittleEndian(_ext.X87.AsSpan(n)));
            }
        }

        if (sse)
        {
            WriteMemory(linear + 24, 4, _ext.Mxcsr);
            WriteMemory(linear + 28, 4, MxcsrMask);
            for (var n = 0; n < XmmRegisterCount; n++)
            {
                WriteVector(linear + XmmAreaOffset + (ulong)(16 * n), 16, _ext.Xmm[n]);
            }
        }
    }

    private void RestoreLegacyArea(ulong linear, bool x87, bool sse)
    {
        if (x87)
        {
            Span<byte> staged = stackalloc byte[X87RegisterOffset + X87RegisterBytes];
            for (var n = 0; n < staged.Length; n += 8)
            {
                if (n is >= X87HeaderBytes and < X87RegisterOffset)
                {
                    continue;
                }

                BinaryPrimitives.WriteUInt64LittleEndian(staged[n..], ReadMemory(linear + (ulong)n, 8));
            }

            staged[X87HeaderBytes..X87RegisterOffset].Clear();
            staged.CopyTo(_ext.X87);
        }

        if (sse)
        {
            Span<Vector128<byte>> staged = stackalloc Vector128<byte>[16];
            for (var n = 0; n < XmmRegisterCount; n++)
            {
                staged[n] = ReadVector(linear + XmmAreaOffset + (ulong)(16 * n), 16);
            }

            for (var n = 0; n < XmmRegisterCount; n++)
            {
                _ext.Xmm[n] = staged[n];
            }
        }
    }

    /// <summary>XRSTOR (standard format): the header is checked first (#GP), then each requested component is loaded or initialised.</summary>
    private void RestoreExtendedArea(ref DecodedInstruction d, ulong linear)
    {
        var rfbm = _ext.Xcr0 & ((Gpr(2) << 32) | (uint)Gpr(0));
        var header = linear + XsaveHeaderOffset;
        var xstateBv = ReadMemory(header, 8);
        var xcompBv = ReadMemory(header + 8, 8);
        var reserved = ReadMemory(header + 16, 8);
        if ((xstateBv & ~_ext.Xcr0) != 0 || xcompBv != 0 || reserved != 0)
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x} ({d.Instruction}): XSAVE header XSTATE_BV 0x{xstateBv:x}, XCOMP_BV 0x{xcompBv:x}, bytes 16–23 0x{reserved:x} (XCR0 0x{_ext.Xcr0:x}; compaction is not supported)";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        if ((rfbm & 2) != 0)
        {
            LoadMxcsr((uint)ReadMemory(linear + 24, 4));
        }

        if ((rfbm & 1) != 0)
        {
            if ((xstateBv & 1) != 0)
            {
                RestoreLegacyArea(linear, x87: true, sse: false);
            }
            else
            {
                _ext.X87.AsSpan().Clear();
                _ext.X87[0] = 0x7F;
                _ext.X87[1] = 0x03;
            }
        }

        if ((rfbm & 2) != 0)
        {
            if ((xstateBv & 2) != 0)
            {
                RestoreLegacyArea(linear, x87: false, sse: true);
            }
            else
            {
                for (var n = 0; n < XmmRegisterCount; n++)
                {
                    _ext.Xmm[n] = Vector128<byte>.Zero;
                }
            }
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// SSE/SSE2 state and the legacy-encoded (non-VEX) SSE/SSE2 instructions: the XMM register file, MXCSR, the
/// CR0.EM/TS and CR4.OSFXSR gates, 16-byte memory operands with the aligned forms' #GP, and data movement.
/// The arithmetic lives in <c>X86Cpu.SseInteger.cs</c> and <c>X86Cpu.SseFloat.cs</c>.
/// </summary>
/// <remarks>
/// Invariants: an SSE handler runs only after <see cref="RequireSse"/> passed; XMM8–15 are reachable only in
/// 64-bit mode (the decoder cannot name them elsewhere). MXCSR's rounding control, FTZ, DAZ, exception flags and #XM
/// follow <c>X86Cpu.SimdExceptions.cs</c>.
/// </remarks>
public sealed unsafe partial class X86Cpu // unsafe: 16-byte operands are read and written through TLB host pointers.
{
    internal const ulong Cr0Mp = 1UL << 1;
    internal const ulong Cr0Em = 1UL << 2;
    internal const ulong Cr4Osfxsr = 1UL << 9;
    internal const ulong Cr4Osxmmexcpt = 1UL << 10;
    internal const ulong Cr4Osxsave = 1UL << 18;

    /// <summary>MXCSR's power-on value: every exception masked, round to nearest.</summary>
    internal const uint MxcsrDefault = 0x1F80;

    /// <summary>The MXCSR bits software may set (FXSAVE's MXCSR_MASK): DAZ included.</summary>
    internal const uint MxcsrMask = 0xFFFF;


    // XMM registers, MXCSR and the rest of the state the integer hot path never reads (see CpuExtendedState).
    private readonly CpuExtendedState _ext = new();

    /// <summary>MXCSR.</summary>
    public uint Mxcsr => _ext.Mxcsr;

    /// <summary>Reads XMM register <paramref name="index"/> (0–15).</summary>
    public Vector128<byte> GetXmm(int index) => _ext.Xmm[index];

    /// <summary>Writes XMM register <paramref name="index"/> (0–15).</summary>
    public void SetXmm(int index, Vector128<byte> value) => _ext.Xmm[index] = value;

    /// <summary>Writes MXCSR from outside the guest (tests, boot); reserved bits are refused.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> sets a reserved bit.</exception>
    public void SetMxcsr(uint value)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(value & ~MxcsrMask, 0u, nameof(value));
        _ext.Mxcsr = value;
    }

    /// <summary>#UD when CR0.EM is set or CR4.OSFXSR is clear, #NM when CR0.TS is set (SDM Vol. 3A 13.1, table 2-19).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RequireSse(ref DecodedInstruction d)
    {
        if ((_cr0 & (Cr0Em | Cr0Ts)) != 0 || (_cr4 & Cr4Osfxsr) == 0)
        {
            SseUnavailable(ref d);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SseUnavailable(ref DecodedInstruction d)
    {
        if ((_cr0 & Cr0Em) != 0 || (_cr4 & Cr4Osfxsr) == 0)
        {
            RaiseUndefined(ref d, (_cr0 & Cr0Em) != 0 ? "an SSE instruction with CR0.EM set" : "an SSE instruction with CR4.OSFXSR clear");
        }

        _lastFaultDetail = $"#NM at RIP 0x{_currentIp:x} ({d.Instruction}): CR0.TS is set";
        RaiseFault(ExceptionVector.DeviceNotAvailable, null, _lastFaultDetail);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int XmmIndex(Register register) => register - Register.XMM0;

    /// <summary>The linear address of an SSE memory operand; a 16-byte operand of an aligned form must be 16-byte aligned (#GP(0)).</summary>
    private ulong SseLinear(ref DecodedInstruction d)
    {
        var linear = Linear(ref d);
        if (d.MemorySize == 16 && (linear & 15) != 0 && !IsUnalignedForm(d.Instruction.Mnemonic))
        {
            _lastFaultDetail = $"#GP at RIP 0x{_currentIp:x} ({d.Instruction}): 16-byte operand at 0x{linear:x} is not 16-byte aligned";
            RaiseFault(ExceptionVector.GeneralProtection, 0, _lastFaultDetail);
        }

        return linear;
    }

    private static bool IsUnalignedForm(Mnemonic mnemonic) => mnemonic is Mnemonic.Movups or Mnemonic.Movupd or Mnemonic.Movdqu;

    /// <summary>Operand <paramref name="n"/> as a vector: an XMM register, or the memory operand zero-extended from its size.</summary>
    private Vector128<byte> SseOperand(ref DecodedInstruction d, int n)
    {
        ref var i = ref d.Instruction;
        return i.GetOpKind(n) == OpKind.Register ? _ext.Xmm[XmmIndex(i.GetOpRegister(n))] : ReadVector(SseLinear(ref d), d.MemorySize);
    }

    /// <summary>Reads 2, 4, 8 or 16 bytes at <paramref name="linear"/> into the low bytes of a vector (the rest zero).</summary>
    private Vector128<byte> ReadVector(ulong linear, int size)
    {
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Read, out var host))
        {
            return size switch
            {
                16 => Unsafe.ReadUnaligned<Vector128<byte>>(host),
                8 => Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(host)).AsByte(),
                4 => Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(host)).AsByte(),
                _ => Vector128.CreateScalar(Unsafe.ReadUnaligned<ushort>(host)).AsByte(),
            };
        }

        return ReadVectorSlow(linear, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Vector128<byte> ReadVectorSlow(ulong linear, int size)
    {
        var value = Vector128<byte>.Zero;
        var buffer = MemoryMarshal.CreateSpan(ref Unsafe.As<Vector128<byte>, byte>(ref value), 16)[..size];
        var result = _mmu.Read(new Gva(linear), buffer, GuestAccess.Read);
        if (!result.IsOk)
        {
            FinishFailedAccess(result, linear, buffer, write: false, SegmentRegister.Ds);
        }

        return value;
    }

    /// <summary>Writes the low <paramref name="size"/> (4, 8 or 16) bytes of <paramref name="value"/> at <paramref name="linear"/>.</summary>
    private void WriteVector(ulong linear, int size, Vector128<byte> value)
    {
        if ((linear & Paging.PageOffsetMask) <= Paging.PageSize - (uint)size && _tlb.TryLookup(new Gva(linear), GuestAccess.Write, out var host))
        {
            switch (size)
            {
                case 16: Unsafe.WriteUnaligned(host, value); break;
                case 8: Unsafe.WriteUnaligned(host, value.AsUInt64().ToScalar()); break;
                case 4: Unsafe.WriteUnaligned(host, value.AsUInt32().ToScalar()); break;
                default: Unsafe.WriteUnaligned(host, value.AsUInt16().ToScalar()); break;
            }

            return;
        }

        WriteVectorSlow(linear, size, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WriteVectorSlow(ulong linear, int size, Vector128<byte> value)
    {
        var buffer = MemoryMarshal.CreateSpan(ref Unsafe.As<Vector128<byte>, byte>(ref value), 16)[..size];
        var result = _mmu.Write(new Gva(linear), buffer, GuestAccess.Write);
        if (!result.IsOk)
        {
            FinishFailedAccess(result, linear, buffer, write: true, SegmentRegister.Ds);
        }
    }

    /// <summary>Every legacy SSE/SSE2 instruction (<see cref="Op.Sse"/>): the gate, then the handler by mnemonic.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ExecuteSse(ref DecodedInstruction d)
    {
        RequireSse(ref d);
        ref var i = ref d.Instruction;
        switch (i.Mnemonic)
        {
            case Mnemonic.Movaps: case Mnemonic.Movups: case Mnemonic.Movapd: case Mnemonic.Movupd:
            case Mnemonic.Movdqa: case Mnemonic.Movdqu: case Mnemonic.Movntps: case Mnemonic.Movntpd: case Mnemonic.Movntdq:
                MoveWhole(ref d);
                return;
            case Mnemonic.Movss: MoveScalar(ref d, 4); return;
            case Mnemonic.Movsd: MoveScalar(ref d, 8); return;
            case Mnemonic.Movd: case Mnemonic.Movq: MoveIntegerScalar(ref d); return;
            case Mnemonic.Movlps: case Mnemonic.Movlpd: MoveHalf(ref d, high: false); return;
            case Mnemonic.Movhps: case Mnemonic.Movhpd: MoveHalf(ref d, high: true); return;
            case Mnemonic.Movhlps:
            {
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                dst = dst.AsUInt64().WithElement(0, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().GetElement(1)).AsByte();
                return;
            }

            case Mnemonic.Movlhps:
            {
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                dst = dst.AsUInt64().WithElement(1, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().GetElement(0)).AsByte();
                return;
            }

            case Mnemonic.Movmskps:
                WriteGpr(d.Reg0, Vector128.ExtractMostSignificantBits(_ext.Xmm[XmmIndex(i.Op1Register)].AsUInt32()));
                return;
            case Mnemonic.Movmskpd:
                WriteGpr(d.Reg0, Vector128.ExtractMostSignificantBits(_ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64()));
                return;
            case Mnemonic.Pmovmskb:
                WriteGpr(d.Reg0, Vector128.ExtractMostSignificantBits(_ext.Xmm[XmmIndex(i.Op1Register)]));
                return;
            case Mnemonic.Maskmovdqu: MaskedMove(ref d); return;
            default:
                if (!ExecuteSseInteger(ref d) && !ExecuteSseFloat(ref d))
                {
                    RaiseUndefined(ref d, $"'{i}' is not implemented by the interpreter");
                }

                return;
        }
    }

    /// <summary>MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU and the non-temporal stores: 16 bytes, register or memory either side.</summary>
    private void MoveWhole(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        if (i.Op0Kind == OpKind.Register)
        {
            _ext.Xmm[XmmIndex(i.Op0Register)] = SseOperand(ref d, 1);
        }
        else
        {
            WriteVector(SseLinear(ref d), 16, _ext.Xmm[XmmIndex(i.Op1Register)]);
        }
    }

    /// <summary>MOVSS/MOVSD: register to register merges the low element; a load zeroes the rest; a store writes the element.</summary>
    private void MoveScalar(ref DecodedInstruction d, int size)
    {
        ref var i = ref d.Instruction;
        if (i.Op0Kind != OpKind.Register)
        {
            WriteVector(Linear(ref d), size, _ext.Xmm[XmmIndex(i.Op1Register)]);
            return;
        }

        ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
        if (i.Op1Kind == OpKind.Memory)
        {
            dst = ReadVector(Linear(ref d), size);
        }
        else if (size == 4)
        {
            dst = dst.AsUInt32().WithElement(0, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt32().ToScalar()).AsByte();
        }
        else
        {
            dst = dst.AsUInt64().WithElement(0, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().ToScalar()).AsByte();
        }
    }

    /// <summary>MOVD/MOVQ between XMM and a general register or memory, and MOVQ xmm, xmm/m64 (upper half zeroed).</summary>
    private void MoveIntegerScalar(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var size = i.Mnemonic == Mnemonic.Movd ? 4 : 8;
        if (i.Op0Kind == OpKind.Register && i.Op0Register.IsXMM())
        {
            if (i.Op1Kind == OpKind.Register && i.Op1Register.IsXMM())
            {
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.CreateScalar(_ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().ToScalar()).AsByte();
            }
            else
            {
                var value = i.Op1Kind == OpKind.Memory ? ReadMemory(Linear(ref d), size) : ReadGpr(d.Reg1);
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.CreateScalar(value).AsByte();
            }

            return;
        }

        var source = _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().ToScalar();
        if (i.Op0Kind == OpKind.Memory)
        {
            WriteMemory(Linear(ref d), size, source);
        }
        else
        {
            WriteGpr(d.Reg0, size == 4 ? (uint)source : source);
        }
    }

    /// <summary>MOVLPS/MOVHPS/MOVLPD/MOVHPD: one 64-bit half between an XMM register and memory.</summary>
    private void MoveHalf(ref DecodedInstruction d, bool high)
    {
        ref var i = ref d.Instruction;
        var element = high ? 1 : 0;
        if (i.Op0Kind == OpKind.Memory)
        {
            WriteMemory(Linear(ref d), 8, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt64().GetElement(element));
            return;
        }

        ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
        dst = dst.AsUInt64().WithElement(element, ReadMemory(Linear(ref d), 8)).AsByte();
    }

    /// <summary>MASKMOVDQU: the bytes of the first register whose mask byte (second register) has bit 7 set, stored at DS:rDI.</summary>
    private void MaskedMove(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var data = _ext.Xmm[XmmIndex(i.Op1Register)];
        var mask = _ext.Xmm[XmmIndex(i.Op2Register)];
        var offset = ReadCounterLike(d.AddressSize, 7);
        for (var n = 0; n < 16; n++)
        {
            if ((mask.GetElement(n) & 0x80) != 0)
            {
                WriteMemory(ToLinear((offset + (ulong)n) & MaskOf(d.AddressSize * 8), d.Segment), 1, data.GetElement(n));
            }
        }
    }
}

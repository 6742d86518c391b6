using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// Dispatch: the hot specialised forms in one small jump table inlined into the block loop, everything else in
/// one jump table over <see cref="Op"/> behind a call; the data-movement and control-flow handlers.
/// </summary>
public sealed unsafe partial class X86Cpu // unsafe: the memory ALU fast path works on the TLB host pointer.
{
    // The hot forms, inlined into the block loop (its frame is set up once per block, not per instruction);
    // everything else goes through one call to the general dispatch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Execute(ref DecodedInstruction d)
    {
        switch (d.Op)
        {
            case Op.MovRR:
                Gpr(d.Reg0 & 0xF) = Gpr(d.Reg1 & 0xF) & d.Mask;
                return;
            case Op.MovRI:
                Gpr(d.Reg0 & 0xF) = d.Immediate & d.Mask;
                return;
            case Op.MovRM:
                Gpr(d.Reg0 & 0xF) = ReadMemory(Linear(ref d), d.Size);
                return;
            case Op.MovMR:
                WriteMemory(Linear(ref d), d.Size, Gpr(d.Reg1 & 0xF));
                return;
            case Op.AddRR: AddFast(ref d, Gpr(d.Reg1 & 0xF) & d.Mask); return;
            case Op.AddRI: AddFast(ref d, d.Immediate & d.Mask); return;
            case Op.SubRR: SubFast(ref d, Gpr(d.Reg1 & 0xF) & d.Mask, store: true); return;
            case Op.SubRI: SubFast(ref d, d.Immediate & d.Mask, store: true); return;
            case Op.CmpRR: SubFast(ref d, Gpr(d.Reg1 & 0xF) & d.Mask, store: false); return;
            case Op.CmpRI: SubFast(ref d, d.Immediate & d.Mask, store: false); return;
            case Op.CmpRM: SubFast(ref d, ReadMemory(Linear(ref d), d.Size), store: false); return;
            case Op.AndRR: LogicFast(ref d, Gpr(d.Reg0 & 0xF) & Gpr(d.Reg1 & 0xF), store: true); return;
            case Op.AndRI: LogicFast(ref d, Gpr(d.Reg0 & 0xF) & d.Immediate, store: true); return;
            case Op.OrRR: LogicFast(ref d, Gpr(d.Reg0 & 0xF) | Gpr(d.Reg1 & 0xF), store: true); return;
            case Op.XorRR: LogicFast(ref d, Gpr(d.Reg0 & 0xF) ^ Gpr(d.Reg1 & 0xF), store: true); return;
            case Op.TestRR: LogicFast(ref d, Gpr(d.Reg0 & 0xF) & Gpr(d.Reg1 & 0xF), store: false); return;
            case Op.TestRI: LogicFast(ref d, Gpr(d.Reg0 & 0xF) & d.Immediate, store: false); return;
            case Op.OrRI: LogicFast(ref d, Gpr(d.Reg0 & 0xF) | d.Immediate, store: true); return;
            case Op.XorRI: LogicFast(ref d, Gpr(d.Reg0 & 0xF) ^ d.Immediate, store: true); return;
            case Op.ShlRI: case Op.ShrRI: case Op.SarRI: ShiftFast(ref d); return;
            case Op.AdcRI:
            {
                ref var slot = ref Gpr(d.Reg0 & 0xF);
                var a = slot & d.Mask;
                var b = d.Immediate & d.Mask;
                _flagCarryIn = CarryFlag();
                var result = (a + b + (_flagCarryIn ? 1UL : 0)) & d.Mask;
                slot = result;
                SetFlags(FlagOp.Adc, d.Size * 8, a, b, result);
                return;
            }

            case Op.AddMR: case Op.OrMR: case Op.AndMR: case Op.XorMR: case Op.SubMR: MemoryAluFast(ref d); return;
            case Op.Lea:
                WriteGpr(d.Reg0, EffectiveAddress(ref d));
                return;
            case Op.Jcc:
                if (Condition(d.Condition))
                {
                    _rip = d.Target;
                }

                return;
            case Op.Jmp:
                _rip = d.Target;
                return;
            case Op.Nop:
                return;
            default:
                ExecuteGeneral(ref d);
                return;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private void ExecuteGeneral(ref DecodedInstruction d)
    {
        _currentIp = d.Instruction.IP;
        ref var i = ref d.Instruction;
        switch (d.Op)
        {
            case Op.IncR: IncDecFast(ref d, 1); return;
            case Op.DecR: IncDecFast(ref d, d.Mask); return;
            case Op.Mov:
                WriteOperand0(ref d, ReadOperand(ref d, 1));
                return;
            case Op.Movzx:
                WriteGpr(d.Reg0, ReadOperand(ref d, 1));
                return;
            case Op.Movsx:
                WriteGpr(d.Reg0, (ulong)SignExtend(ReadOperand(ref d, 1), SourceBits(ref d)));
                return;
            case Op.Add: Arith(ref d, FlagOp.Add); return;
            case Op.Or: Logic(ref d, 0); return;
            case Op.Adc: Arith(ref d, FlagOp.Adc); return;
            case Op.Sbb: Arith(ref d, FlagOp.Sbb); return;
            case Op.And: Logic(ref d, 1); return;
            case Op.Sub: Arith(ref d, FlagOp.Sub); return;
            case Op.Xor: Logic(ref d, 2); return;
            case Op.Cmp: Compare(ref d); return;
            case Op.Test: TestOp(ref d); return;
            case Op.Inc: IncDec(ref d, FlagOp.Inc); return;
            case Op.Dec: IncDec(ref d, FlagOp.Dec); return;
            case Op.Neg: Negate(ref d); return;
            case Op.Not:
            {
                var value = ReadDestination(ref d, out var linear);
                WriteDestination(ref d, linear, ~value);
                return;
            }

            case Op.Setcc:
                WriteOperand0(ref d, Condition(d.Condition) ? 1UL : 0);
                return;
            case Op.Cmovcc:
            {
                var value = ReadOperand(ref d, 1);
                if (Condition(d.Condition))
                {
                    WriteGpr(d.Reg0, value);
                }
                else if (d.Size == 4)
                {
                    WriteGpr(d.Reg0, ReadGpr(d.Reg0));
                }

                return;
            }

            case Op.JmpIndirect:
                _rip = ReadOperand(ref d, 0);
                return;
            case Op.Call:
                Push(_rip, StackOperandSize(ref d));
                _rip = d.Target;
                return;
            case Op.CallIndirect:
            {
                var target = ReadOperand(ref d, 0);
                Push(_rip, StackOperandSize(ref d));
                _rip = target;
                return;
            }

            case Op.Ret:
            {
                var size = ReturnSize(i.Code);
                var target = Pop(size);
                if (i.OpCount == 1)
                {
                    ref var rsp = ref Gpr(4);
                    var mask = StackMask;
                    rsp = (rsp & ~mask) | ((rsp + i.Immediate16) & mask);
                }

                _rip = target;
                return;
            }

            case Op.Loop:
            case Op.Loope:
            case Op.Loopne:
            {
                var count = (ReadCounter(d.AddressSize) - 1) & MaskOf(d.AddressSize * 8);
                WriteCounter(d.AddressSize, count);
                var take = count != 0 && (d.Op == Op.Loop || (d.Op == Op.Loope ? ZeroFlag() : !ZeroFlag()));
                if (take)
                {
                    _rip = d.Target;
                }

                return;
            }

            case Op.Jrcxz:
                if (ReadCounter(JcxzSize(i.Code)) == 0)
                {
                    _rip = d.Target;
                }

                return;
            case Op.Push:
                Push(ReadOperand(ref d, 0), StackOperandSize(ref d));
                return;
            case Op.Pop:
            {
                var size = StackOperandSize(ref d);
                var value = Pop(size);
                if (i.Op0Kind == OpKind.Memory)
                {
                    // The address uses RSP after the pop, as hardware computes it.
                    WriteMemory(Linear(ref d), size, value);
                }
                else
                {
                    WriteRegister(i.Op0Register, value);
                }

                return;
            }

            case Op.Xchg: Exchange(ref d); return;
            case Op.Cmpxchg: CompareExchange(ref d); return;
            case Op.Cmpxchg8b: CompareExchangeDouble(ref d, 4); return;
            case Op.Cmpxchg16b: CompareExchangeDouble(ref d, 8); return;
            case Op.Xadd: ExchangeAdd(ref d); return;
            case Op.Bswap:
            {
                var value = ReadRegister(i.Op0Register);
                WriteRegister(i.Op0Register, d.Size == 8 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value)
                    : d.Size == 4 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)value) : 0);
                return;
            }

            case Op.Rol: case Op.Ror: case Op.Rcl: case Op.Rcr: Rotate(ref d); return;
            case Op.Shl: case Op.Shr: case Op.Sar: Shift(ref d); return;
            case Op.Shld: case Op.Shrd: DoubleShift(ref d); return;
            case Op.Mul: Multiply(ref d, signed: false); return;
            case Op.Imul1: Multiply(ref d, signed: true); return;
            case Op.Imul2: case Op.Imul3: MultiplyTruncating(ref d); return;
            case Op.Div: Divide(ref d, signed: false); return;
            case Op.Idiv: Divide(ref d, signed: true); return;
            case Op.Bt: case Op.Bts: case Op.Btr: case Op.Btc: BitTest(ref d); return;
            case Op.Bsf: case Op.Bsr: case Op.Popcnt: case Op.Lzcnt: case Op.Tzcnt: BitScan(ref d); return;
            case Op.SignExtendAccumulator: SignExtendAccumulator(ref d); return;
            case Op.SignExtendIntoDx: SignExtendIntoDx(ref d); return;
            case Op.Leave:
            {
                // Iced reports no stack-pointer increment for LEAVE: the pop size is the operand size.
                var size = i.Code switch { Code.Leaveq => 8, Code.Leavew => 2, _ => 4 };
                var mask = StackMask;
                ref var rsp = ref Gpr(4);
                rsp = (rsp & ~mask) | (Gpr(5) & mask);
                var rbp = Pop(size);
                WriteGpr(5, size, rbp);
                return;
            }

            case Op.Enter: Enter(ref d); return;
            case Op.Pushf:
                Push(GetRflags() & ~(FlagRf | (1UL << 16) | (1UL << 17)), StackOperandSize(ref d));
                return;
            case Op.Popf:
                PopFlags(StackOperandSize(ref d));
                return;
            case Op.Pusha: PushAll(ref d); return;
            case Op.Popa: PopAll(ref d); return;
            case Op.Clc: WriteFlags(FlagCf, 0); return;
            case Op.Stc: WriteFlags(FlagCf, FlagCf); return;
            case Op.Cmc: WriteFlags(FlagCf, CarryFlag() ? 0 : FlagCf); return;
            case Op.Cld: _rflags &= ~FlagDf; return;
            case Op.Std: _rflags |= FlagDf; return;
            case Op.Cli: RequireIoPrivilege(); _rflags &= ~FlagIf; return;
            case Op.Sti: RequireIoPrivilege(); if ((_rflags & FlagIf) == 0) { BeginInterruptShadow(); _rflags |= FlagIf; } return;
            case Op.Lahf:
                WriteRegister(Register.AH, (GetRflags() & 0xD5) | 2);
                return;
            case Op.Sahf:
                WriteFlags(FlagCf | FlagPf | FlagAf | FlagZf | FlagSf, ReadRegister(Register.AH));
                return;
            case Op.Xlat:
            {
                var offset = (ReadCounterLike(d.AddressSize, 3) + ReadRegister(Register.AL)) & MaskOf(d.AddressSize * 8);
                WriteRegister(Register.AL, ReadMemory(ToLinear(offset, d.Segment), 1));
                return;
            }

            case Op.Movs: case Op.Stos: case Op.Lods: case Op.Cmps: case Op.Scas: case Op.Ins: case Op.Outs:
                StringOp(ref d);
                return;
            case Op.Sse: ExecuteSse(ref d); return;
            case Op.SseState: ExecuteSseState(ref d); return;
            case Op.X87Control: ExecuteX87Control(ref d); return;
            default:
                ExecuteSystem(ref d);
                return;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AddFast(ref DecodedInstruction d, ulong b)
    {
        ref var slot = ref Gpr(d.Reg0 & 0xF);
        var a = slot & d.Mask;
        var result = (a + b) & d.Mask;
        slot = result;
        SetFlags(FlagOp.Add, d.Size * 8, a, b, result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SubFast(ref DecodedInstruction d, ulong b, bool store)
    {
        ref var slot = ref Gpr(d.Reg0 & 0xF);
        var a = slot & d.Mask;
        var result = (a - b) & d.Mask;
        if (store)
        {
            slot = result;
        }

        SetFlags(FlagOp.Sub, d.Size * 8, a, b, result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void LogicFast(ref DecodedInstruction d, ulong value, bool store)
    {
        var result = value & d.Mask;
        if (store)
        {
            Gpr(d.Reg0 & 0xF) = result;
        }

        SetFlags(FlagOp.Logic, d.Size * 8, 0, 0, result);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void IncDecFast(ref DecodedInstruction d, ulong addend)
    {
        ref var slot = ref Gpr(d.Reg0 & 0xF);
        var a = slot & d.Mask;
        var result = (a + addend) & d.Mask;
        var carry = CarryFlag();
        slot = result;
        if (addend == 1)
        {
            SetFlags(FlagOp.Inc, d.Size * 8, a, 1, result);
        }
        else
        {
            SetFlags(FlagOp.Dec, d.Size * 8, a, 1, result);
        }

        _flagCarryIn = carry;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ShiftFast(ref DecodedInstruction d)
    {
        var count = (int)(d.Kind1 == OperandKind.Immediate ? d.Immediate : Gpr(1)) & (d.Size == 8 ? 63 : 31);
        if (count == 0)
        {
            // A masked count of 0 changes no flag, but a 32-bit destination is still written (zero-extended).
            Gpr(d.Reg0 & 0xF) &= d.Mask;
            return;
        }

        var bits = d.Size * 8;
        ref var slot = ref Gpr(d.Reg0 & 0xF);
        var value = slot & d.Mask;
        ulong result;
        FlagOp op;
        switch (d.Op)
        {
            case Op.ShlRI:
                result = (value << count) & d.Mask;
                op = FlagOp.Shl;
                break;
            case Op.ShrRI:
                result = value >> count;
                op = FlagOp.Shr;
                break;
            default:
                result = (ulong)(SignExtend(value, bits) >> count) & d.Mask;
                op = FlagOp.Sar;
                break;
        }

        slot = result;
        SetFlags(op, bits, value, (ulong)count, result);
    }

    /// <summary>ADD/SUB/AND/OR/XOR of a register or immediate into 32/64-bit memory: one TLB write lookup for the read and the write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MemoryAluFast(ref DecodedInstruction d)
    {
        var linear = Linear(ref d);
        var size = d.Size;
        var b = (d.Kind1 == OperandKind.Register ? Gpr(d.Reg1 & 0xF) : d.Immediate) & d.Mask;
        if ((linear & Hypervisor.Notifier.Paging.PageOffsetMask) > Hypervisor.Notifier.Paging.PageSize - (uint)size
            || !_tlb.TryLookup(new Hypervisor.GuestMmu.Addresses.Gva(linear), Hypervisor.GuestMmu.Walker.GuestAccess.Write, out var host))
        {
            switch (d.Op)
            {
                case Op.AddMR: Arith(ref d, FlagOp.Add); return;
                case Op.SubMR: Arith(ref d, FlagOp.Sub); return;
                case Op.OrMR: Logic(ref d, 0); return;
                case Op.AndMR: Logic(ref d, 1); return;
                default: Logic(ref d, 2); return;
            }
        }

        var a = size == 8 ? Unsafe.ReadUnaligned<ulong>(host) : Unsafe.ReadUnaligned<uint>(host);
        ulong result;
        switch (d.Op)
        {
            case Op.AddMR:
                result = (a + b) & d.Mask;
                SetFlags(FlagOp.Add, size * 8, a, b, result);
                break;
            case Op.SubMR:
                result = (a - b) & d.Mask;
                SetFlags(FlagOp.Sub, size * 8, a, b, result);
                break;
            default:
                result = d.Op == Op.OrMR ? a | b : d.Op == Op.AndMR ? a & b : a ^ b;
                SetFlags(FlagOp.Logic, size * 8, 0, 0, result);
                break;
        }

        if (size == 8) { Unsafe.WriteUnaligned(host, result); }
        else { Unsafe.WriteUnaligned(host, (uint)result); }
    }

    private static int SourceBits(ref DecodedInstruction d) => (d.Kind1 == OperandKind.Register ? d.Reg1 >> 8 : d.MemorySize) * 8;

    /// <summary>The stack slot size of PUSH/POP/CALL/LEAVE/PUSHF (Iced's stack-pointer increment).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StackOperandSize(ref DecodedInstruction d)
    {
        var increment = d.Instruction.StackPointerIncrement;
        return increment < 0 ? -increment : increment;
    }

    private int ReturnSize(Code code) => code switch
    {
        Code.Retnq or Code.Retnq_imm16 => 8,
        Code.Retnd or Code.Retnd_imm16 => 4,
        Code.Retnw or Code.Retnw_imm16 => 2,
        _ => _bitness == 64 ? 8 : 4,
    };

    private static int JcxzSize(Code code) => code switch
    {
        Code.Jrcxz_rel8_64 or Code.Jrcxz_rel8_16 => 8,
        Code.Jecxz_rel8_16 or Code.Jecxz_rel8_32 or Code.Jecxz_rel8_64 => 4,
        _ => 2,
    };

    private ulong ReadCounter(int size) => ReadCounterLike(size, 1);

    private ulong ReadCounterLike(int size, int gpr) => size == 8 ? Gpr(gpr) : size == 4 ? (uint)Gpr(gpr) : (ushort)Gpr(gpr);

    private void WriteCounter(int size, ulong value) => WriteGpr(1, size, value);

    /// <summary>Writes <paramref name="size"/> bytes of GPR <paramref name="index"/> with x86's merge/zero-extension rules.</summary>
    private void WriteGpr(int index, int size, ulong value)
    {
        ref var slot = ref Gpr(index);
        slot = size switch
        {
            8 => value,
            4 => (uint)value,
            2 => (slot & ~0xFFFFUL) | (ushort)value,
            _ => (slot & ~0xFFUL) | (byte)value,
        };
    }

    private void RequireIoPrivilege()
    {
        if (Cpl > (int)((_rflags >> 12) & 3))
        {
            RaiseFault(ExceptionVector.GeneralProtection, 0);
        }
    }
}

using System.Reflection.Emit;

namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// The widening moves and the conditional forms of the translation: MOVZX/MOVSX/MOVSXD into a 32/64-bit register from a
/// register (the high-byte ones included) or memory, SETcc of a byte register and CMOVcc between 32/64-bit registers.
/// None reads memory but through the soft TLB's fast path (its miss through the interpreter's read), none writes the
/// flags, and the conditions are read as a Jcc reads them.
/// </summary>
internal static partial class BlockCompiler
{
    private static bool IsTranslatedWidening(in DecodedInstruction d) =>
        (d.Reg0 >> 8) is 4 or 8 && d.Kind0 == OperandKind.Register && !d.Instruction.HasLockPrefix
        && (d.Kind1 == OperandKind.Register || (d.Kind1 == OperandKind.Memory && d.MemorySize is 1 or 2 or 4));

    private static bool IsTranslatedCompare(in DecodedInstruction d) =>
        !d.Instruction.HasLockPrefix && d.Size is 1 or 2 or 4 or 8
        && d.Kind0 is OperandKind.Register or OperandKind.Memory
        && d.Kind1 is OperandKind.Register or OperandKind.Memory or OperandKind.Immediate;

    // ADD/SUB/AND/OR/XOR r, m and ADC/SBB r, r/m/imm into a 32/64-bit register (the specialised forms cover the rest).
    private static bool IsTranslatedArithmetic(in DecodedInstruction d) =>
        d.Kind0 == OperandKind.Register && (d.Reg0 >> 8) is 4 or 8
        && (d.Op is Op.Adc or Op.Sbb ? d.Kind1 is OperandKind.Register or OperandKind.Memory or OperandKind.Immediate : d.Kind1 == OperandKind.Memory);

    // PUSH/POP of a 64-bit register in 64-bit code (the stack segment's base ignored, RSP wrapping at 64 bits).
    private static bool IsTranslatedStack(in DecodedInstruction d, int bitness) =>
        bitness == 64 && d.Kind0 == OperandKind.Register && (d.Reg0 >> 8) == 8 && d.Instruction.StackPointerIncrement is 8 or -8;

    private sealed partial class Emitter
    {
        // The interpreter's Arith/Logic on a register destination: the memory source read first (it may fault: nothing
        // is changed before), the carry in for ADC/SBB, then the record (op, bits, a, b, result) with the carry beside it.
        private void EmitArithmeticGeneral(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var bits = d.Size * 8;
            var withCarry = d.Op is Op.Adc or Op.Sbb;
            if (d.Kind1 == OperandKind.Memory)
            {
                LoadThroughTlb(ref d, d.Size);
            }

            if (withCarry)
            {
                EmitCarry();
                il.Emit(OpCodes.Stloc, _carry);
            }

            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            switch (d.Kind1)
            {
                case OperandKind.Memory: il.Emit(OpCodes.Ldloc, _temp); break;
                case OperandKind.Register: LoadRegister(d.Reg1 & 0xF); Mask(d.Mask); break;
                default: Constant(d.Immediate & d.Mask); break;
            }

            il.Emit(OpCodes.Stloc, _flagB);
            il.Emit(OpCodes.Ldloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagB);
            il.Emit(d.Op switch
            {
                Op.Add or Op.Adc => OpCodes.Add,
                Op.Sub or Op.Sbb => OpCodes.Sub,
                Op.And => OpCodes.And,
                Op.Or => OpCodes.Or,
                _ => OpCodes.Xor,
            });
            if (withCarry)
            {
                il.Emit(OpCodes.Ldloc, _carry);
                il.Emit(OpCodes.Conv_U8);
                il.Emit(d.Op == Op.Adc ? OpCodes.Add : OpCodes.Sub);
            }

            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            var (source, op) = d.Op switch
            {
                Op.Add => (FlagSource.Add, X86Cpu.FlagOpAdd),
                Op.Sub => (FlagSource.Sub, X86Cpu.FlagOpSub),
                Op.Adc => (FlagSource.Unknown, X86Cpu.FlagOpAdc),
                Op.Sbb => (FlagSource.Unknown, X86Cpu.FlagOpSbb),
                _ => (FlagSource.Logic, X86Cpu.FlagOpLogic),
            };
            RecordFlags(source, op, bits, carry: withCarry);
        }

        // PUSH r64 / POP r64 through the TLB's host pointer for the stack slot; otherwise (a miss, a page crossing, a
        // watched page) the whole instruction through the interpreter's handler, nothing changed before. PUSH RSP
        // stores the value before the decrement; POP RSP leaves the popped value.
        private void EmitStack(ref DecodedInstruction d, int k)
        {
            var slow = il.DefineLabel();
            var done = il.DefineLabel();
            var top = il.DeclareLocal(typeof(ulong));
            var push = d.Op == Op.Push;
            LoadRegister(4);
            if (push)
            {
                Constant(8);
                il.Emit(OpCodes.Sub);
            }

            il.Emit(OpCodes.Stloc, top);
            HostPointer(top, 8, write: push, slow);
            if (push)
            {
                il.Emit(OpCodes.Ldloc, _pointer);
                LoadRegister(d.Reg0 & 0xF);
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Stind_I8);
                il.Emit(OpCodes.Ldloc, top);
                StoreRegister(4);
            }
            else
            {
                il.Emit(OpCodes.Ldloc, _pointer);
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_I8);
                il.Emit(OpCodes.Stloc, _temp);
                il.Emit(OpCodes.Ldloc, top);
                Constant(8);
                il.Emit(OpCodes.Add);
                StoreRegister(4);
                il.Emit(OpCodes.Ldloc, _temp);
                StoreRegister(d.Reg0 & 0xF);
            }

            il.Emit(OpCodes.Br, done);
            il.MarkLabel(slow);
            EmitInterpreterArm(k);
            il.MarkLabel(done);
        }

        // CMP/TEST of any size with a register, memory or immediate operand (the forms the specialised ones leave: 8 and
        // 16 bits, memory first): the interpreter's record, (Sub, bits, a, b, a - b) or (Logic, bits, a, b, a & b),
        // pending in the flag locals. The memory operand is read first (its read may fault: nothing is changed before).
        private void EmitCompare(ref DecodedInstruction d)
        {
            var size = d.Size;
            var mask = size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
            if (d.Kind0 == OperandKind.Memory || d.Kind1 == OperandKind.Memory)
            {
                LoadThroughTlb(ref d, size);
            }

            var immediate = d.Immediate & mask;
            void Operand(OperandKind kind, ushort register)
            {
                switch (kind)
                {
                    case OperandKind.Register:
                        LoadRegister(register & 0xF);
                        if ((register & 0x10) != 0)
                        {
                            il.Emit(OpCodes.Ldc_I4_8);
                            il.Emit(OpCodes.Shr_Un);
                        }

                        Mask(mask);
                        break;
                    case OperandKind.Memory:
                        il.Emit(OpCodes.Ldloc, _temp);
                        break;
                    default:
                        Constant(immediate);
                        break;
                }
            }

            Operand(d.Kind0, d.Reg0);
            il.Emit(OpCodes.Stloc, _flagA);
            Operand(d.Kind1, d.Reg1);
            il.Emit(OpCodes.Stloc, _flagB);
            il.Emit(OpCodes.Ldloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagB);
            if (d.Op == Op.Cmp)
            {
                il.Emit(OpCodes.Sub);
                Mask(mask);
                il.Emit(OpCodes.Stloc, _flagResult);
                RecordFlags(FlagSource.Sub, X86Cpu.FlagOpSub, size * 8);
            }
            else
            {
                il.Emit(OpCodes.And);
                il.Emit(OpCodes.Stloc, _flagResult);
                RecordFlags(FlagSource.Logic, X86Cpu.FlagOpLogic, size * 8);
            }
        }

        // The source of a widening move, zero- or sign-extended to 64 bits, into the destination (a 32-bit one
        // zero-extended): WriteGpr(Reg0, SignExtend(ReadOperand(1), SourceBits)) as the interpreter does it.
        private void EmitWidening(ref DecodedInstruction d, int k)
        {
            var signed = d.Op == Op.Movsx;
            var size = d.Kind1 == OperandKind.Register ? d.Reg1 >> 8 : d.MemorySize;
            if (d.Kind1 == OperandKind.Register)
            {
                LoadRegister(d.Reg1 & 0xF);
                if ((d.Reg1 & 0x10) != 0)
                {
                    il.Emit(OpCodes.Ldc_I4_8);
                    il.Emit(OpCodes.Shr_Un);
                }
            }
            else
            {
                LoadThroughTlb(ref d, size);
                il.Emit(OpCodes.Ldloc, _temp);
            }

            switch (size, signed)
            {
                case (1, false): il.Emit(OpCodes.Conv_U1); il.Emit(OpCodes.Conv_U8); break;
                case (2, false): il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Conv_U8); break;
                case (4, false): il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Conv_U8); break;
                case (1, true): il.Emit(OpCodes.Conv_I1); il.Emit(OpCodes.Conv_I8); break;
                case (2, true): il.Emit(OpCodes.Conv_I2); il.Emit(OpCodes.Conv_I8); break;
                case (4, true): il.Emit(OpCodes.Conv_I4); il.Emit(OpCodes.Conv_I8); break;
            }

            if ((d.Reg0 >> 8) == 4)
            {
                il.Emit(OpCodes.Conv_U4);
                il.Emit(OpCodes.Conv_U8);
            }

            StoreRegister(d.Reg0 & 0xF);
            if (d.Kind1 == OperandKind.Memory)
            {
                StoreRipIfBroken(d.NextIp, k);
            }
        }

        // `size` bytes at the memory operand into _temp (zero-extended): the TLB's host pointer, else the interpreter's
        // read (which may fault or reach MMIO: the register file, flags and RIP are made current first).
        private void LoadThroughTlb(ref DecodedInstruction d, int size)
        {
            var slow = il.DefineLabel();
            var done = il.DefineLabel();
            var linear = MemoryPointer(ref d, size, write: false, aligned: false, slow);
            il.Emit(OpCodes.Ldloc, _pointer);
            il.Emit(OpCodes.Unaligned, (byte)1);
            switch (size)
            {
                case 1: il.Emit(OpCodes.Ldind_U1); il.Emit(OpCodes.Conv_U8); break;
                case 2: il.Emit(OpCodes.Ldind_U2); il.Emit(OpCodes.Conv_U8); break;
                case 4: il.Emit(OpCodes.Ldind_U4); il.Emit(OpCodes.Conv_U8); break;
                default: il.Emit(OpCodes.Ldind_I8); break;
            }

            il.Emit(OpCodes.Stloc, _temp);
            il.Emit(OpCodes.Br, done);
            il.MarkLabel(slow);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            StoreRip(d.NextIp);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, linear);
            il.Emit(OpCodes.Ldc_I4, size);
            il.Emit(OpCodes.Call, X86Cpu.ReadMemoryMethod);
            il.Emit(OpCodes.Stloc, _temp);
            il.MarkLabel(done);
        }

        // SETcc of a byte register: the low (or AH..BH: the second) byte of its slot set to the condition, the rest kept.
        private void EmitSetcc(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var shift = (d.Reg0 & 0x10) != 0 ? 8 : 0;
            EmitCondition(d.Condition);
            il.Emit(OpCodes.Conv_U8);
            if (shift != 0)
            {
                il.Emit(OpCodes.Ldc_I4, shift);
                il.Emit(OpCodes.Shl);
            }

            LoadRegister(slot);
            Constant(~(0xFFUL << shift));
            il.Emit(OpCodes.And);
            il.Emit(OpCodes.Or);
            StoreRegister(slot);
        }

        // CMOVcc r, r (32/64-bit): the source when the condition holds; a 32-bit destination is zero-extended either way.
        private void EmitCmov(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var taken = il.DefineLabel();
            var done = il.DefineLabel();
            EmitCondition(d.Condition);
            il.Emit(OpCodes.Brtrue, taken);
            LoadRegister(slot);
            Mask(d.Mask);
            StoreRegister(slot);
            il.Emit(OpCodes.Br, done);
            il.MarkLabel(taken);
            LoadRegister(d.Reg1 & 0xF);
            Mask(d.Mask);
            StoreRegister(slot);
            il.MarkLabel(done);
        }
    }
}

using System.Reflection.Emit;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// Translates a decoded basic block to IL (<see cref="DynamicMethod"/>) that the .NET JIT compiles to native code.
/// The hot register forms (MOV, ADD, SUB, CMP, AND, OR, XOR, TEST, shifts, IMUL, LEA, and the 32/64-bit
/// loads, stores and compares through the soft TLB) are translated inline; a Jcc after a translated compare or
/// logic instruction tests the operands directly; every other instruction calls the interpreter's handler, so the
/// translation covers any block.
/// </summary>
/// <remarks>
/// What the translation keeps, instruction for instruction: the registers and the lazy-flags record the
/// interpreter would leave (a flags record is skipped only when the next translated instruction overwrites it and
/// nothing between can read it or fault); RIP stored before every instruction that can fault or calls the
/// interpreter; the interpreter's early end of a block (<c>_blockBroken</c>) checked after each of them. A block
/// whose last branch goes back to its start loops inside the method (QEMU's chaining of a block to itself), asking
/// the vCPU at each back edge whether the block-boundary checks (shootdowns, stops, interrupts, timers, code
/// changes, budget) allow another pass. A block that may be linked ends by continuing, as a tail call, into the
/// compiled code of its linked successor when the vCPU allows chaining (QEMU's <c>goto_tb</c>).
/// </remarks>
internal static partial class BlockCompiler
{
    /// <summary>
    /// The environment variable that, set to 1, has compiled blocks count per form the instructions they leave to the
    /// interpreter (<see cref="JitStats.InterpretedForms"/>); off, nothing is emitted for it.
    /// </summary>
    public const string ProfileVariable = "HV_JIT_INTERPRETED";

    private static readonly bool ProfileInterpreted = Environment.GetEnvironmentVariable(ProfileVariable) == "1";

    /// <summary>Passes of a compiled self-loop between two polls of the vCPU's asynchronous requests.</summary>
    internal const int PollEveryPasses = 64;

    private static readonly Type[] Parameters = [typeof(X86Cpu), typeof(CodeBlock), typeof(long)];
    private static readonly System.Reflection.FieldInfo CompiledField = typeof(CodeBlock).GetField(nameof(CodeBlock.Compiled))!;
    private static readonly System.Reflection.FieldInfo LoopTraceField = typeof(CodeBlock).GetField(nameof(CodeBlock.LoopTrace))!;
    private static readonly System.Reflection.MethodInfo BigMulMethod =
        typeof(Math).GetMethod(nameof(Math.BigMul), [typeof(long), typeof(long), typeof(long).MakeByRefType()])!;
    private static readonly System.Reflection.MethodInfo InvokeMethod = typeof(CompiledBlockCode).GetMethod(nameof(CompiledBlockCode.Invoke))!;

    /// <summary>Compiles <paramref name="block"/>, decoded in a <paramref name="bitness"/>-bit code segment.</summary>
    public static CompiledBlockCode Compile(CodeBlock block, int bitness)
    {
        var method = new DynamicMethod(
            $"block_{block.StartRip:x}", typeof(int), Parameters, typeof(X86Cpu).Module, skipVisibility: true);
        var emitter = new Emitter(method.GetILGenerator(), block, bitness);
        emitter.EmitBlock();
        var code = method.CreateDelegate<CompiledBlockCode>();

        // The .NET JIT compiles a DynamicMethod at its first call: make that call now, on this thread, with no block
        // (the code returns at once), so the cost is paid here and counted as the block's compile time.
        code(null!, null!, 0);
        return code;
    }

    private static Form Classify(in DecodedInstruction d, int bitness)
    {
        switch (d.Op)
        {
            case Op.Nop:
                return Form.Nop;
            case Op.MovRR: case Op.MovRI:
            case Op.AddRR: case Op.AddRI: case Op.SubRR: case Op.SubRI: case Op.CmpRR: case Op.CmpRI:
            case Op.AndRR: case Op.AndRI: case Op.OrRR: case Op.OrRI: case Op.XorRR: case Op.XorRI:
            case Op.TestRR: case Op.TestRI:
                return Form.Register;
            case Op.ShlRI: case Op.ShrRI: case Op.SarRI:
            case Op.AdcRI: case Op.IncR: case Op.DecR:
                return Form.Register;
            case Op.MovRM: case Op.MovMR: case Op.CmpRM:
            case Op.AddMR: case Op.OrMR: case Op.AndMR: case Op.XorMR: case Op.SubMR:
                return Form.Memory;
            case Op.Lea:
                return (d.Reg0 >> 8) is 4 or 8 ? Form.Register : Form.Interpreted;
            case Op.Imul2: case Op.Imul3:
                return d.Kind1 == OperandKind.Register && d.Size is 4 or 8 ? Form.Register : Form.Interpreted;
            case Op.Jcc: case Op.Jmp:
                return Form.Branch;
            case Op.Sse:
                return IsTranslatedSse(d) ? Form.Sse : Form.Interpreted;
            case Op.Movs: case Op.Stos: case Op.Lods:
                return Form.String;
            case Op.Movzx: case Op.Movsx:
                return IsTranslatedWidening(d) ? Form.Widening : Form.Interpreted;
            case Op.Setcc:
                return d.Kind0 == OperandKind.Register ? Form.Setcc : Form.Interpreted;
            case Op.Cmp: case Op.Test:
                return IsTranslatedCompare(d) ? Form.Compare : Form.Interpreted;
            case Op.Add: case Op.Sub: case Op.And: case Op.Or: case Op.Xor: case Op.Adc: case Op.Sbb:
                return IsTranslatedArithmetic(d) ? Form.Arithmetic : Form.Interpreted;
            case Op.Push: case Op.Pop:
                return IsTranslatedStack(d, bitness) ? Form.Stack : Form.Interpreted;
            case Op.Cmovcc:
                return d.Kind0 == OperandKind.Register && d.Kind1 == OperandKind.Register && d.Size is 4 or 8 ? Form.Cmov : Form.Interpreted;
            default:
                return Form.Interpreted;
        }
    }

    /// <summary>How an instruction is translated.</summary>
    private enum Form
    {
        Interpreted,
        Nop,
        Register,
        Memory,
        Branch,

        /// <summary>An SSE form translated inline, with the interpreter's handler as its other arm.</summary>
        Sse,

        /// <summary>MOVS/STOS/LODS: the vCPU's in-page path, else the interpreter's handler.</summary>
        String,

        /// <summary>MOVZX/MOVSX/MOVSXD into a 32/64-bit register.</summary>
        Widening,

        /// <summary>SETcc of a byte register.</summary>
        Setcc,

        /// <summary>CMOVcc between 32/64-bit registers.</summary>
        Cmov,

        /// <summary>CMP/TEST of the sizes and operand orders the specialised forms leave.</summary>
        Compare,

        /// <summary>ADD/SUB/AND/OR/XOR r, m and ADC/SBB into a 32/64-bit register.</summary>
        Arithmetic,

        /// <summary>PUSH/POP of a 64-bit register in 64-bit code.</summary>
        Stack,
    }

    /// <summary>What the last translated flag-setting instruction left in the flag locals.</summary>
    private enum FlagSource
    {
        /// <summary>Unknown at compile time (read the record through the interpreter).</summary>
        Unknown,
        Add,
        Sub,
        Logic,

        /// <summary>INC/DEC: the result in the locals, CF in the carry local.</summary>
        IncDec,
    }

    /// <summary>The IL emission state of one block.</summary>
    private sealed partial class Emitter(ILGenerator il, CodeBlock block, int bitness)
    {
        // A loop trace (CodeBlock.LoopTrace) is emitted as one self-loop whose first block's branch goes on into the
        // second block's instructions; _split is the first block's length (0: no trace).
        private readonly DecodedInstruction[] _instructions = block.LoopTrace ?? block.Instructions;
        private readonly int _split = block.LoopTrace is null ? 0 : block.Instructions.Length;
        private LocalBuilder _registers = null!;
        private LocalBuilder _instructionArray = null!;
        private LocalBuilder _flagA = null!;
        private LocalBuilder _flagB = null!;
        private LocalBuilder _flagResult = null!;
        private LocalBuilder _temp = null!;
        private LocalBuilder _carry = null!;
        private LocalBuilder _pointer = null!;
        private readonly LocalBuilder?[] _cached = new LocalBuilder?[16];
        private FlagSource _flags;
        private int _flagBits;
        private int _written;
        private int _pendingFlagOp = -1;
        private int _pendingBits;
        private bool _pendingCarry;
        private LocalBuilder _passesToPoll = null!;
        private int _everWritten;
        private (int PendingFlagOp, int PendingBits, bool PendingCarry, FlagSource Flags, int FlagBits, int Written) _steady;

        public void EmitBlock()
        {
            _registers = il.DeclareLocal(typeof(ulong).MakeByRefType());
            _instructionArray = il.DeclareLocal(typeof(DecodedInstruction[]));
            _flagA = il.DeclareLocal(typeof(ulong));
            _flagB = il.DeclareLocal(typeof(ulong));
            _flagResult = il.DeclareLocal(typeof(ulong));
            _temp = il.DeclareLocal(typeof(ulong));
            _carry = il.DeclareLocal(typeof(int));
            _pointer = il.DeclareLocal(typeof(nint));

            // Called with no block by Compile, to have the native code compiled: return before touching anything.
            var body = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Brtrue, body);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Ret);
            il.MarkLabel(body);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldflda, X86Cpu.GprField);
            il.Emit(OpCodes.Stloc, _registers);
            il.Emit(OpCodes.Ldarg_1);
            if (_split > 0)
            {
                il.Emit(OpCodes.Ldfld, LoopTraceField);
            }
            else
            {
                il.Emit(OpCodes.Call, typeof(CodeBlock).GetProperty(nameof(CodeBlock.Instructions))!.GetMethod!);
            }

            il.Emit(OpCodes.Stloc, _instructionArray);

            DeclareRegisterLocals();
            DeclareXmmLocal();
            Reload();
            _passesToPoll = il.DeclareLocal(typeof(int));
            il.Emit(OpCodes.Ldc_I4, PollEveryPasses);
            il.Emit(OpCodes.Stloc, _passesToPoll);
            var top = il.DefineLabel();
            il.MarkLabel(top);
            _flags = FlagSource.Unknown;
            var last = _instructions.Length - 1;
            var selfLoop = Classify(_instructions[last], bitness) == Form.Branch && _instructions[last].Target == block.StartRip;
            EmitBody(selfLoop);
            ref var end = ref _instructions[last];
            if (selfLoop)
            {
                // The first pass is entered with the registers and flags in the vCPU; the steady pass is entered from a
                // back edge in the state a pass ends in: registers written in the loop maybe only in their locals and
                // the last flag record pending in the flag locals. They reach the vCPU where the loop is left, or where
                // something in it needs them.
                var steady = il.DefineLabel();
                EmitBackEdge(ref end, top, steady, first: true);
                il.MarkLabel(steady);
                RestoreSteadyState();
                EmitBody(selfLoop);
                EmitBackEdge(ref end, top, steady, first: false);
                return;
            }

            var form = Classify(end, bitness);
            if (form is not (Form.Branch or Form.Interpreted))
            {
                StoreRip(end.NextIp);
            }

            WriteBack();
            FlushFlags();
            EmitEnd(_instructions.Length);
        }

        private void EmitBody(bool selfLoop)
        {
            var last = _instructions.Length - 1;
            for (var k = 0; k <= last; k++)
            {
                ref var d = ref _instructions[k];
                switch (Classify(d, bitness))
                {
                    case Form.Nop:
                        break;
                    case Form.Register:
                        EmitRegister(ref d, k);
                        break;
                    case Form.Memory:
                        EmitMemory(ref d, k);
                        break;
                    case Form.Branch when k == last && selfLoop:
                        break;
                    case Form.Branch when k == _split - 1:
                        EmitLoopLink(ref d);
                        break;
                    case Form.Branch:
                        EmitBranch(ref d);
                        break;
                    case Form.Sse:
                        EmitSse(ref d, k);
                        break;
                    case Form.String:
                        EmitString(k);
                        break;
                    case Form.Widening:
                        EmitWidening(ref d, k);
                        break;
                    case Form.Setcc:
                        EmitSetcc(ref d);
                        break;
                    case Form.Cmov:
                        EmitCmov(ref d);
                        break;
                    case Form.Compare:
                        EmitCompare(ref d);
                        break;
                    case Form.Arithmetic:
                        EmitArithmeticGeneral(ref d);
                        break;
                    case Form.Stack:
                        EmitStack(ref d, k);
                        break;
                    default:
                        EmitInterpreted(k);
                        break;
                }
            }
        }

        // The emitter's state at the first pass's back edge, which the steady pass starts from.
        private void CaptureSteadyState() =>
            _steady = (_pendingFlagOp, _pendingBits, _pendingCarry, _flags, _flagBits, _written | _everWritten);

        private void RestoreSteadyState() =>
            (_pendingFlagOp, _pendingBits, _pendingCarry, _flags, _flagBits, _written) = _steady;

        // True when the emitter is in the steady pass's starting state, but for registers written since the last
        // write-back: the steady start marks every register the loop writes (a superset).
        private bool InSteadyState() =>
            (_pendingFlagOp, _pendingBits, _pendingCarry, _flags, _flagBits)
            == (_steady.PendingFlagOp, _steady.PendingBits, _steady.PendingCarry, _steady.Flags, _steady.FlagBits)
            && (_written & ~_steady.Written) == 0;

        // The normal end of the block (every instruction retired, RIP at the successor, registers and flags in the
        // vCPU): a block that may be linked continues into its compiled successor when the vCPU allows it, as a tail
        // call (the chain does not grow the stack); otherwise, or when it does not, the retired count is returned.
        // ChainSuccessor accounts for the block's own length and links: a loop trace chains only where its first block
        // ends (retired == that length), and returns its whole pass where its second block ends.
        private void EmitEnd(int retired)
        {
            if (block.Linkable && retired == block.Instructions.Length)
            {
                var successor = il.DeclareLocal(typeof(CodeBlock));
                var plain = il.DefineLabel();
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldarg_2);
                il.Emit(OpCodes.Call, X86Cpu.ChainSuccessorMethod);
                il.Emit(OpCodes.Stloc, successor);
                il.Emit(OpCodes.Ldloc, successor);
                il.Emit(OpCodes.Brfalse, plain);
                il.Emit(OpCodes.Ldloc, successor);
                il.Emit(OpCodes.Ldfld, CompiledField);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, successor);
                il.Emit(OpCodes.Ldarg_2);
                il.Emit(OpCodes.Tailcall);
                il.Emit(OpCodes.Callvirt, InvokeMethod);
                il.Emit(OpCodes.Ret);
                il.MarkLabel(plain);
            }

            il.Emit(OpCodes.Ldc_I4, retired);
            il.Emit(OpCodes.Ret);
        }

        // The end of a loop trace's first block: its branch goes on into the second block's instructions, emitted in
        // line after it, where the vCPU would chain into that block — the next block fits the budget, no event is due
        // and no exit is pending (the checks of ChainSuccessor; the TLB and code-version checks are the loop's polls,
        // the two blocks sharing one page) — else the trace is left there with the first block retired. Where the
        // branch leads elsewhere the trace is left as the first block alone would end, chaining to its successor.
        private void EmitLoopLink(ref DecodedInstruction end)
        {
            var second = _instructions[_split].Instruction.IP;
            var leave = il.DefineLabel();
            var inLine = il.DefineLabel();
            var exit = il.DefineLabel();
            var isJcc = end.Op == Op.Jcc;
            if (isJcc)
            {
                EmitCondition(end.Condition);
                il.Emit(end.Target == second ? OpCodes.Brfalse : OpCodes.Brtrue, exit);
            }

            var retired = il.DeclareLocal(typeof(long));
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.InstructionsField);
            il.Emit(OpCodes.Ldc_I8, (long)_split);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Stloc, retired);
            EmitLeaveUnlessNextPassFits(retired, _instructions.Length - _split, leave);
            AddToField(X86Cpu.BlocksField, 1);
            AddToField(X86Cpu.JitChainedBlocksField, 1);
            il.Emit(OpCodes.Br, inLine);

            il.MarkLabel(leave);
            StoreRip(second);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            il.Emit(OpCodes.Ldc_I4, _split);
            il.Emit(OpCodes.Ret);

            if (isJcc)
            {
                il.MarkLabel(exit);
                StoreRip(end.Target == second ? end.NextIp : end.Target);
                WriteBack(forget: false);
                FlushFlags(forget: false);
                EmitEnd(_split);
            }

            il.MarkLabel(inLine);
        }

        // The block's last branch goes back to its start: another pass runs without leaving the method while the next
        // pass fits the budget, no event is due and no exit is pending (checked every pass, as the block loop would),
        // and, every PollEveryPasses passes, the vCPU's port has no shootdown that changed the TLB, no stop was asked
        // for and the block's code is unchanged (asynchronous requests wait at most that many passes).
        // The first pass's back edge goes to the steady pass in the state it captures; the steady pass's goes back to
        // itself when its end state is that state, else (registers and flags written back) to the first pass. Where the
        // loop is left, the registers and the flag record are written back.
        private void EmitBackEdge(ref DecodedInstruction end, System.Reflection.Emit.Label top, System.Reflection.Emit.Label steady, bool first)
        {
            var length = _instructions.Length;
            var leave = il.DefineLabel();
            var again = il.DefineLabel();
            var next = il.DeclareLocal(typeof(long));
            if (end.Op == Op.Jcc)
            {
                var taken = il.DefineLabel();
                EmitCondition(end.Condition);
                il.Emit(OpCodes.Brtrue, taken);
                StoreRip(end.NextIp);
                WriteBack(forget: false);
                FlushFlags(forget: false);
                EmitEnd(_instructions.Length);
                il.MarkLabel(taken);
            }

            var target = steady;
            if (first)
            {
                CaptureSteadyState();
            }
            else if (!InSteadyState())
            {
                WriteBack();
                FlushFlags();
                target = top;
            }

            // RIP is not stored per pass: nothing in the loop reads it before an instruction that can fault or runs
            // interpreter code stores its own; it is stored where the loop is left.
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.InstructionsField);
            il.Emit(OpCodes.Ldc_I8, (long)length);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Stloc, next);
            EmitLeaveUnlessNextPassFits(next, length, leave);
            il.Emit(OpCodes.Ldloc, _passesToPoll);
            il.Emit(OpCodes.Ldc_I4_1);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Stloc, _passesToPoll);
            il.Emit(OpCodes.Brtrue, again);
            il.Emit(OpCodes.Ldc_I4, PollEveryPasses);
            il.Emit(OpCodes.Stloc, _passesToPoll);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, X86Cpu.PollCompiledLoopMethod);
            il.Emit(OpCodes.Brfalse, leave);

            il.MarkLabel(again);
            StoreField(X86Cpu.InstructionsField, () => il.Emit(OpCodes.Ldloc, next));
            AddToField(X86Cpu.BlocksField, 1);
            il.Emit(OpCodes.Br, target);

            il.MarkLabel(leave);
            StoreRip(end.Target);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            il.Emit(OpCodes.Ldc_I4, length);
            il.Emit(OpCodes.Ret);
        }

        /// <summary>
        /// The checks before another pass runs in line (a loop's back edge, a trace's inner boundary): leaves to
        /// <paramref name="leave"/> when <paramref name="retired"/> plus the next pass's <paramref name="passLength"/>
        /// instructions would pass the budget, when an event (timer, interrupt) is due at <paramref name="retired"/>, or
        /// when an exit is pending — the dispatcher's own conditions for running a block, so budget cuts stay exact.
        /// </summary>
        private void EmitLeaveUnlessNextPassFits(LocalBuilder retired, long passLength, System.Reflection.Emit.Label leave)
        {
            il.Emit(OpCodes.Ldloc, retired);
            il.Emit(OpCodes.Ldc_I8, passLength);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Bgt, leave);
            il.Emit(OpCodes.Ldloc, retired);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.EventAtField);
            il.Emit(OpCodes.Bge, leave);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldflda, X86Cpu.PendingExitField);
            il.Emit(OpCodes.Call, typeof(CpuExit?).GetProperty(nameof(Nullable<CpuExit>.HasValue))!.GetMethod!);
            il.Emit(OpCodes.Brtrue, leave);
        }

        private void AddToField(System.Reflection.FieldInfo field, long amount)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, field);
            il.Emit(OpCodes.Ldc_I8, amount);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Stfld, field);
        }

        // True when the flags after instruction k are dead: a later instruction of the block overwrites the whole
        // lazy-flags record (op, bits, a, b, result) and none between reads the flags, can fault or runs interpreter
        // code (only MOV r, r / MOV r, imm / LEA / NOP lie between).
        private bool FlagsDeadAfter(int k)
        {
            for (var j = k + 1; j < _instructions.Length; j++)
            {
                ref var d = ref _instructions[j];
                switch (d.Op)
                {
                    case Op.Nop: case Op.MovRR: case Op.MovRI:
                        continue;
                    case Op.Lea when Classify(d, bitness) == Form.Register:
                        continue;
                    case Op.AddRR: case Op.AddRI: case Op.SubRR: case Op.SubRI: case Op.CmpRR: case Op.CmpRI:
                    case Op.AndRR: case Op.AndRI: case Op.OrRR: case Op.OrRI: case Op.XorRR: case Op.XorRI:
                    case Op.TestRR: case Op.TestRI:
                        return true;
                    case Op.ShlRI: case Op.ShrRI: case Op.SarRI:
                        return d.Kind1 == OperandKind.Immediate && (d.Immediate & (d.Size == 8 ? 63UL : 31UL)) != 0;
                    default:
                        return false;
                }
            }

            return false;
        }

        private void EmitRegister(ref DecodedInstruction d, int k)
        {
            var slot = d.Reg0 & 0xF;
            var mask = d.Mask;
            switch (d.Op)
            {
                case Op.MovRR:
                    LoadRegister(d.Reg1 & 0xF);
                    Mask(mask);
                    StoreRegister(slot);
                    return;
                case Op.MovRI:
                    Constant(d.Immediate & mask);
                    StoreRegister(slot);
                    return;
                case Op.Lea:
                    EffectiveAddress(ref d);
                    if ((d.Reg0 >> 8) == 4)
                    {
                        il.Emit(OpCodes.Conv_U4);
                        il.Emit(OpCodes.Conv_U8);
                    }

                    StoreRegister(slot);
                    return;
                case Op.AddRR: case Op.AddRI:
                case Op.SubRR: case Op.SubRI: case Op.CmpRR: case Op.CmpRI:
                    EmitArithmetic(ref d);
                    return;
                case Op.ShlRI: case Op.ShrRI: case Op.SarRI:
                    if (d.Kind1 == OperandKind.Immediate)
                    {
                        EmitShift(ref d);
                    }
                    else
                    {
                        EmitShiftByCl(ref d, k);
                    }

                    return;
                case Op.AdcRI:
                    EmitAdc(ref d);
                    return;
                case Op.IncR: case Op.DecR:
                    EmitIncDec(ref d);
                    return;
                case Op.Imul2: case Op.Imul3:
                    EmitMultiply(ref d);
                    return;
                default:
                    EmitLogic(ref d);
                    return;
            }
        }

        // ADD/SUB/CMP: a = dst & mask, b = src & mask, result = (a ± b) & mask; the record is (op, bits, a, b, result).
        private void EmitArithmetic(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var isAdd = d.Op is Op.AddRR or Op.AddRI;
            var store = d.Op is not (Op.CmpRR or Op.CmpRI);
            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            StoreSourceOperand(ref d);
            il.Emit(OpCodes.Ldloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagB);
            il.Emit(isAdd ? OpCodes.Add : OpCodes.Sub);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            if (store)
            {
                il.Emit(OpCodes.Ldloc, _flagResult);
                StoreRegister(slot);
            }

            RecordFlags(isAdd ? FlagSource.Add : FlagSource.Sub, isAdd ? X86Cpu.FlagOpAdd : X86Cpu.FlagOpSub, d.Size * 8);
        }

        // AND/OR/XOR/TEST: result = (dst op src) & mask; the record is (Logic, bits, 0, 0, result).
        private void EmitLogic(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var register = d.Op is Op.AndRR or Op.OrRR or Op.XorRR or Op.TestRR;
            LoadRegister(slot);
            if (register)
            {
                LoadRegister(d.Reg1 & 0xF);
            }
            else
            {
                Constant(d.Immediate);
            }

            il.Emit(d.Op switch
            {
                Op.OrRR or Op.OrRI => OpCodes.Or,
                Op.XorRR or Op.XorRI => OpCodes.Xor,
                _ => OpCodes.And,
            });
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            if (d.Op is not (Op.TestRR or Op.TestRI))
            {
                il.Emit(OpCodes.Ldloc, _flagResult);
                StoreRegister(slot);
            }

            il.Emit(OpCodes.Ldc_I8, 0L);
            il.Emit(OpCodes.Stloc, _flagA);
            il.Emit(OpCodes.Ldc_I8, 0L);
            il.Emit(OpCodes.Stloc, _flagB);
            RecordFlags(FlagSource.Logic, X86Cpu.FlagOpLogic, d.Size * 8);
        }

        // SHL/SHR/SAR by an immediate: a masked count of 0 changes no flag but still writes (zero-extends) the
        // destination; otherwise the record is (op, bits, value, count, result).
        private void EmitShift(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var bits = d.Size * 8;
            var count = (int)(d.Immediate & (d.Size == 8 ? 63UL : 31UL));
            if (count == 0)
            {
                LoadRegister(slot);
                Mask(d.Mask);
                StoreRegister(slot);
                return;
            }

            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagA);
            switch (d.Op)
            {
                case Op.ShlRI:
                    il.Emit(OpCodes.Ldc_I4, count);
                    il.Emit(OpCodes.Shl);
                    break;
                case Op.ShrRI:
                    il.Emit(OpCodes.Ldc_I4, count);
                    il.Emit(OpCodes.Shr_Un);
                    break;
                default:
                    if (bits == 32)
                    {
                        il.Emit(OpCodes.Conv_I4);
                        il.Emit(OpCodes.Conv_I8);
                    }

                    il.Emit(OpCodes.Ldc_I4, count);
                    il.Emit(OpCodes.Shr);
                    break;
            }

            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            Constant((ulong)count);
            il.Emit(OpCodes.Stloc, _flagB);
            var op = d.Op switch
            {
                Op.ShlRI => X86Cpu.FlagOpShl,
                Op.ShrRI => X86Cpu.FlagOpShr,
                _ => X86Cpu.FlagOpSar,
            };
            RecordFlags(FlagSource.Unknown, op, bits);
        }

        // SHL/SHR/SAR by CL: the count is known only at run time, so a count of 0 (which keeps the flags and still
        // writes the destination) is a branch; the record is then the interpreter's, read back through it.
        private void EmitShiftByCl(ref DecodedInstruction d, int k)
        {
            // A count of 0 keeps the record before it: that arm stores it to the vCPU, and the other arm stores its own,
            // so both arms leave the record in the vCPU.
            var slot = d.Reg0 & 0xF;
            var bits = d.Size * 8;
            var count = il.DeclareLocal(typeof(int));
            var nonZero = il.DefineLabel();
            var done = il.DefineLabel();
            LoadRegister(1);
            il.Emit(OpCodes.Conv_I4);
            il.Emit(OpCodes.Ldc_I4, d.Size == 8 ? 63 : 31);
            il.Emit(OpCodes.And);
            if (FlagsDeadAfter(k))
            {
                // Whichever arm runs, the record it would leave is overwritten before anything reads it or can fault:
                // only the result is computed, and the record before it is dropped as dead too.
                il.Emit(OpCodes.Stloc, count);
                LoadRegister(slot);
                Mask(d.Mask);
                ShiftByLocal(ref d, bits, count);
                StoreRegister(slot);
                _pendingFlagOp = -1;
                _flags = FlagSource.Unknown;
                return;
            }

            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Stloc, count);
            il.Emit(OpCodes.Brtrue, nonZero);
            FlushFlags(forget: false);
            LoadRegister(slot);
            Mask(d.Mask);
            StoreRegister(slot);
            il.Emit(OpCodes.Br, done);

            il.MarkLabel(nonZero);
            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagA);
            ShiftByLocal(ref d, bits, count);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            il.Emit(OpCodes.Ldloc, count);
            il.Emit(OpCodes.Conv_I8);
            il.Emit(OpCodes.Stloc, _flagB);
            var op = d.Op switch
            {
                Op.ShlRI => X86Cpu.FlagOpShl,
                Op.ShrRI => X86Cpu.FlagOpShr,
                _ => X86Cpu.FlagOpSar,
            };
            RecordFlags(FlagSource.Unknown, op, bits, eager: true);
            il.MarkLabel(done);
            _flags = FlagSource.Unknown;
        }

        // Shifts the masked operand on the stack by the count in `count` (SAR of 32 bits sign-extends first) and masks
        // the result to the operand size.
        private void ShiftByLocal(ref DecodedInstruction d, int bits, LocalBuilder count)
        {
            if (d.Op == Op.SarRI && bits == 32)
            {
                il.Emit(OpCodes.Conv_I4);
                il.Emit(OpCodes.Conv_I8);
            }

            il.Emit(OpCodes.Ldloc, count);
            il.Emit(d.Op switch { Op.ShlRI => OpCodes.Shl, Op.ShrRI => OpCodes.Shr_Un, _ => OpCodes.Shr });
            Mask(d.Mask);
        }

        // ADC r, imm: CF in, then the record (Adc, bits, a, b, result) with the carry-in beside it.
        private void EmitAdc(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            EmitCarry();
            il.Emit(OpCodes.Stloc, _carry);
            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            Constant(d.Immediate & d.Mask);
            il.Emit(OpCodes.Stloc, _flagB);
            il.Emit(OpCodes.Ldloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagB);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ldloc, _carry);
            il.Emit(OpCodes.Conv_U8);
            il.Emit(OpCodes.Add);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            RecordFlags(FlagSource.Unknown, X86Cpu.FlagOpAdc, d.Size * 8, carry: true);
        }

        // INC/DEC r: CF is kept (carried in the record's carry-in), the rest is recorded from the result.
        private void EmitIncDec(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            EmitCarry();
            il.Emit(OpCodes.Stloc, _carry);
            LoadRegister(slot);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagA);
            Constant(d.Op == Op.IncR ? 1UL : d.Mask);
            il.Emit(OpCodes.Add);
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            Constant(1);
            il.Emit(OpCodes.Stloc, _flagB);
            RecordFlags(FlagSource.IncDec, d.Op == Op.IncR ? X86Cpu.FlagOpInc : X86Cpu.FlagOpDec, d.Size * 8, carry: true);
        }

        // IMUL r, r and IMUL r, r, imm (32/64-bit): the signed product truncated to the destination; the record is
        // (Mul, bits, 0, overflowed ? 1 : 0, result), CF = OF = the product did not fit.
        private void EmitMultiply(ref DecodedInstruction d)
        {
            var slot = d.Reg0 & 0xF;
            var source = d.Reg1 & 0xF;
            var three = d.Op == Op.Imul3;
            var immediate = d.Immediate;
            void LoadFactors(bool narrow)
            {
                LoadRegister(three ? source : slot);
                if (narrow)
                {
                    il.Emit(OpCodes.Conv_I4);
                    il.Emit(OpCodes.Conv_I8);
                }

                if (three)
                {
                    Constant(immediate);
                }
                else
                {
                    LoadRegister(source);
                }

                if (narrow)
                {
                    il.Emit(OpCodes.Conv_I4);
                    il.Emit(OpCodes.Conv_I8);
                }
            }

            if (d.Size == 8)
            {
                var low = il.DeclareLocal(typeof(long));
                LoadFactors(narrow: false);
                il.Emit(OpCodes.Ldloca, low);
                il.Emit(OpCodes.Call, BigMulMethod);
                il.Emit(OpCodes.Ldloc, low);
                il.Emit(OpCodes.Ldc_I4, 63);
                il.Emit(OpCodes.Shr);
                il.Emit(OpCodes.Ceq);
                il.Emit(OpCodes.Ldc_I4_0);
                il.Emit(OpCodes.Ceq);
                il.Emit(OpCodes.Conv_U8);
                il.Emit(OpCodes.Stloc, _flagB);
                il.Emit(OpCodes.Ldloc, low);
                il.Emit(OpCodes.Stloc, _flagResult);
            }
            else
            {
                LoadFactors(narrow: true);
                il.Emit(OpCodes.Mul);
                il.Emit(OpCodes.Stloc, _temp);
                il.Emit(OpCodes.Ldloc, _temp);
                il.Emit(OpCodes.Ldloc, _temp);
                il.Emit(OpCodes.Conv_I4);
                il.Emit(OpCodes.Conv_I8);
                il.Emit(OpCodes.Ceq);
                il.Emit(OpCodes.Ldc_I4_0);
                il.Emit(OpCodes.Ceq);
                il.Emit(OpCodes.Conv_U8);
                il.Emit(OpCodes.Stloc, _flagB);
                il.Emit(OpCodes.Ldloc, _temp);
                Mask(d.Mask);
                il.Emit(OpCodes.Stloc, _flagResult);
            }

            il.Emit(OpCodes.Ldloc, _flagResult);
            StoreRegister(slot);
            il.Emit(OpCodes.Ldc_I8, 0L);
            il.Emit(OpCodes.Stloc, _flagA);
            RecordFlags(FlagSource.Unknown, X86Cpu.FlagOpMul, d.Size * 8);
        }

        // Pushes CF (0 or 1) as the interpreter's CarryFlag computes it: from the locals when the last flag-setting
        // instruction was translated, else from the record.
        private void EmitCarry()
        {
            switch (_flags)
            {
                case FlagSource.Sub:
                    il.Emit(OpCodes.Ldloc, _flagA);
                    il.Emit(OpCodes.Ldloc, _flagB);
                    il.Emit(OpCodes.Clt_Un);
                    return;
                case FlagSource.Add:
                    il.Emit(OpCodes.Ldloc, _flagResult);
                    il.Emit(OpCodes.Ldloc, _flagA);
                    il.Emit(OpCodes.Clt_Un);
                    return;
                case FlagSource.Logic:
                    il.Emit(OpCodes.Ldc_I4_0);
                    return;
                case FlagSource.IncDec:
                    il.Emit(OpCodes.Ldloc, _carry);
                    return;
                default:
                    FlushFlags();
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Call, X86Cpu.CarryFlagMethod);
                    return;
            }
        }

        // ADD/SUB/AND/OR/XOR of a register or immediate into 32/64-bit memory: one TLB write lookup for the read and
        // the write, as the interpreter's fast form does; anything else (a miss, a page crossing) through its handler.
        private void EmitMemoryAlu(ref DecodedInstruction d, int k)
        {
            var linear = il.DeclareLocal(typeof(ulong));
            var fast = il.DefineLabel();
            var done = il.DefineLabel();
            Linear(ref d);
            il.Emit(OpCodes.Stloc, linear);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, linear);
            il.Emit(OpCodes.Ldc_I4, (int)d.Size);
            il.Emit(OpCodes.Call, X86Cpu.WritableHostPointerMethod);
            il.Emit(OpCodes.Stloc, _pointer);
            il.Emit(OpCodes.Ldloc, _pointer);
            il.Emit(OpCodes.Brtrue, fast);

            // The interpreter's path (a miss, a page crossing, a watched page): it records the same operation's flags in
            // the vCPU, which are copied to the flag locals, so both arms leave this instruction's record pending there.
            // The registers written before stay marked (the other arm did not write them back).
            var (source, flagOp) = d.Op switch
            {
                Op.AddMR => (FlagSource.Add, X86Cpu.FlagOpAdd),
                Op.SubMR => (FlagSource.Sub, X86Cpu.FlagOpSub),
                _ => (FlagSource.Logic, X86Cpu.FlagOpLogic),
            };
            WriteBack(forget: false);
            FlushFlags(forget: false);
            StoreRip(d.NextIp);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _instructionArray);
            il.Emit(OpCodes.Ldc_I4, k);
            il.Emit(OpCodes.Ldelema, typeof(DecodedInstruction));
            il.Emit(OpCodes.Call, X86Cpu.ExecuteInterpretedMethod);
            LoadField(X86Cpu.FlagAField, _flagA);
            LoadField(X86Cpu.FlagBField, _flagB);
            LoadField(X86Cpu.FlagResultField, _flagResult);
            RecordFlags(source, flagOp, d.Size * 8);
            EndIfBroken(k);
            Reload();
            il.Emit(OpCodes.Br, done);

            il.MarkLabel(fast);
            il.Emit(OpCodes.Ldloc, _pointer);
            if (d.Size == 8)
            {
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_I8);
            }
            else
            {
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_U4);
                il.Emit(OpCodes.Conv_U8);
            }

            il.Emit(OpCodes.Stloc, _flagA);
            StoreSourceOperand(ref d);
            il.Emit(OpCodes.Ldloc, _flagA);
            il.Emit(OpCodes.Ldloc, _flagB);
            il.Emit(d.Op switch
            {
                Op.AddMR => OpCodes.Add,
                Op.SubMR => OpCodes.Sub,
                Op.OrMR => OpCodes.Or,
                Op.AndMR => OpCodes.And,
                _ => OpCodes.Xor,
            });
            Mask(d.Mask);
            il.Emit(OpCodes.Stloc, _flagResult);
            il.Emit(OpCodes.Ldloc, _pointer);
            il.Emit(OpCodes.Ldloc, _flagResult);
            il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(d.Size == 8 ? OpCodes.Stind_I8 : OpCodes.Stind_I4);
            if (source == FlagSource.Logic)
            {
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Stloc, _flagA);
                il.Emit(OpCodes.Ldc_I8, 0L);
                il.Emit(OpCodes.Stloc, _flagB);
            }

            RecordFlags(source, flagOp, d.Size * 8);
            il.MarkLabel(done);
        }

        private void LoadField(System.Reflection.FieldInfo field, LocalBuilder local)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, field);
            il.Emit(OpCodes.Stloc, local);
        }

        // A flag-setting instruction's lazy-flags record stays in the flag locals (pending) until a point where the
        // vCPU's record must be current — the same points as the registers' write-back, and before the interpreter's
        // flag evaluation is called — so of a run of flag-setting instructions only the last one's record is stored.
        // The second operand of a register or immediate form, masked to the operation size, into the flag record's b.
        private void StoreSourceOperand(ref DecodedInstruction d)
        {
            if (d.Kind1 == OperandKind.Register)
            {
                LoadRegister(d.Reg1 & 0xF);
                Mask(d.Mask);
            }
            else
            {
                Constant(d.Immediate & d.Mask);
            }

            il.Emit(OpCodes.Stloc, _flagB);
        }

        private void RecordFlags(FlagSource source, int flagOp, int bits, bool eager = false, bool carry = false)
        {
            _flags = source;
            _flagBits = bits;
            _pendingFlagOp = flagOp;
            _pendingBits = bits;
            _pendingCarry = carry;
            if (eager)
            {
                FlushFlags();
            }
        }

        private void FlushFlags(bool forget = true)
        {
            if (_pendingFlagOp < 0)
            {
                return;
            }

            var op = _pendingFlagOp;
            var bits = _pendingBits;
            StoreField(X86Cpu.FlagOpField, () => il.Emit(OpCodes.Ldc_I4, op));
            StoreField(X86Cpu.FlagBitsField, () => il.Emit(OpCodes.Ldc_I4, bits));
            StoreField(X86Cpu.FlagAField, () => il.Emit(OpCodes.Ldloc, _flagA));
            StoreField(X86Cpu.FlagBField, () => il.Emit(OpCodes.Ldloc, _flagB));
            StoreField(X86Cpu.FlagResultField, () => il.Emit(OpCodes.Ldloc, _flagResult));
            if (_pendingCarry)
            {
                StoreField(X86Cpu.FlagCarryInField, () => il.Emit(OpCodes.Ldloc, _carry));
            }

            if (forget)
            {
                _pendingFlagOp = -1;
            }
        }

        // MOV m, r: the register's 4 or 8 bytes through the TLB's host pointer, else the interpreter's write (which may fault
        // or reach MMIO: the register file, flags and RIP are made current first).
        private void StoreThroughTlb(ref DecodedInstruction d)
        {
            var slow = il.DefineLabel();
            var done = il.DefineLabel();
            var linear = MemoryPointer(ref d, (int)d.Size, write: true, aligned: false, slow);

            // The TLB hit: a plain host access, which cannot fault or reach the interpreter.
            il.Emit(OpCodes.Ldloc, _pointer);
            LoadRegister(d.Reg1 & 0xF);
            if (d.Size == 4)
            {
                il.Emit(OpCodes.Conv_U4);
            }

            il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(d.Size == 8 ? OpCodes.Stind_I8 : OpCodes.Stind_I4);
            il.Emit(OpCodes.Br, done);
            il.MarkLabel(slow);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            StoreRip(d.NextIp);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, linear);
            il.Emit(OpCodes.Ldc_I4, (int)d.Size);
            LoadRegister(d.Reg1 & 0xF);
            il.Emit(OpCodes.Call, X86Cpu.WriteMemoryMethod);
            il.MarkLabel(done);
        }

        // MOV r, m / MOV m, r / CMP r, m through the interpreter's TLB fast path (a miss takes its slow path, which
        // may fault or reach MMIO); RIP is stored first and the block's early end is checked after.
        private void EmitMemory(ref DecodedInstruction d, int k)
        {
            if (d.Op is Op.AddMR or Op.OrMR or Op.AndMR or Op.XorMR or Op.SubMR)
            {
                EmitMemoryAlu(ref d, k);
                return;
            }

            var slot = d.Reg0 & 0xF;
            if (d.Op == Op.MovMR)
            {
                StoreThroughTlb(ref d);
            }
            else
            {
                LoadThroughTlb(ref d, (int)d.Size);
            }

            switch (d.Op)
            {
                case Op.MovRM:
                    il.Emit(OpCodes.Ldloc, _temp);
                    StoreRegister(slot);
                    break;
                case Op.CmpRM:
                    il.Emit(OpCodes.Ldloc, _temp);
                    il.Emit(OpCodes.Stloc, _flagB);
                    LoadRegister(slot);
                    Mask(d.Mask);
                    il.Emit(OpCodes.Stloc, _flagA);
                    il.Emit(OpCodes.Ldloc, _flagA);
                    il.Emit(OpCodes.Ldloc, _flagB);
                    il.Emit(OpCodes.Sub);
                    Mask(d.Mask);
                    il.Emit(OpCodes.Stloc, _flagResult);
                    RecordFlags(FlagSource.Sub, X86Cpu.FlagOpSub, d.Size * 8);
                    break;
            }

            // Only the interpreter's path can end the block early (a store to a watched code page): the instruction has
            // completed, as the block loop would have let it.
            StoreRipIfBroken(d.NextIp, k);
        }

        private void StoreRipIfBroken(ulong nextIp, int k)
        {
            var next = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.BlockBrokenField);
            il.Emit(OpCodes.Brfalse, next);
            StoreRip(nextIp);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Stfld, X86Cpu.BlockBrokenField);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            il.Emit(OpCodes.Ldc_I4, k + 1);
            il.Emit(OpCodes.Ret);
            il.MarkLabel(next);
        }

        private void EmitBranch(ref DecodedInstruction d)
        {
            if (d.Op == Op.Jmp)
            {
                StoreRip(d.Target);
                return;
            }

            var taken = il.DefineLabel();
            var done = il.DefineLabel();
            EmitCondition(d.Condition);
            il.Emit(OpCodes.Brtrue, taken);
            StoreRip(d.NextIp);
            il.Emit(OpCodes.Br, done);
            il.MarkLabel(taken);
            StoreRip(d.Target);
            il.MarkLabel(done);
        }

        // Pushes the condition as a bool: from the flag locals when the last flag-setting instruction was translated
        // and the condition has a direct form for it (the interpreter's Condition gives the same answers), else
        // through the interpreter's lazy-flags evaluation.
        private void EmitCondition(ConditionCode code)
        {
            switch (_flags)
            {
                case FlagSource.Sub when code is ConditionCode.e or ConditionCode.ne or ConditionCode.b or ConditionCode.ae
                    or ConditionCode.be or ConditionCode.a:
                    Compare(_flagA, _flagB, code, signed: false);
                    return;
                case FlagSource.Sub when code is ConditionCode.l or ConditionCode.ge or ConditionCode.le or ConditionCode.g:
                    Compare(_flagA, _flagB, code, signed: true);
                    return;
                case FlagSource.Logic or FlagSource.Add or FlagSource.IncDec when code is ConditionCode.e or ConditionCode.ne:
                    il.Emit(OpCodes.Ldloc, _flagResult);
                    il.Emit(OpCodes.Ldc_I8, 0L);
                    il.Emit(OpCodes.Ceq);
                    Negate(code == ConditionCode.ne);
                    return;
                case FlagSource.Logic or FlagSource.Add or FlagSource.IncDec when code is ConditionCode.s or ConditionCode.ns:
                    il.Emit(OpCodes.Ldloc, _flagResult);
                    il.Emit(OpCodes.Ldc_I4, _flagBits - 1);
                    il.Emit(OpCodes.Shr_Un);
                    il.Emit(OpCodes.Conv_I4);
                    il.Emit(OpCodes.Ldc_I4_1);
                    il.Emit(OpCodes.And);
                    Negate(code == ConditionCode.ns);
                    return;
                case FlagSource.Add when code is ConditionCode.b or ConditionCode.ae:
                    // The carry out of a masked add: the result wrapped below the first operand.
                    il.Emit(OpCodes.Ldloc, _flagResult);
                    il.Emit(OpCodes.Ldloc, _flagA);
                    il.Emit(OpCodes.Clt_Un);
                    Negate(code == ConditionCode.ae);
                    return;
                default:
                    FlushFlags();
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldc_I4, (int)code);
                    il.Emit(OpCodes.Call, X86Cpu.ConditionMethod);
                    return;
            }
        }

        private void Compare(LocalBuilder left, LocalBuilder right, ConditionCode code, bool signed)
        {
            void Load(LocalBuilder value)
            {
                il.Emit(OpCodes.Ldloc, value);
                if (signed && _flagBits < 64)
                {
                    il.Emit(_flagBits switch { 8 => OpCodes.Conv_I1, 16 => OpCodes.Conv_I2, _ => OpCodes.Conv_I4 });
                    il.Emit(OpCodes.Conv_I8);
                }
            }

            // a OP b, with the three IL comparisons (ceq, clt, cgt) and a negation for the complementary ones.
            var (swap, opcode, negate) = code switch
            {
                ConditionCode.e => (false, OpCodes.Ceq, false),
                ConditionCode.ne => (false, OpCodes.Ceq, true),
                ConditionCode.b => (false, OpCodes.Clt_Un, false),
                ConditionCode.ae => (false, OpCodes.Clt_Un, true),
                ConditionCode.be => (false, OpCodes.Cgt_Un, true),
                ConditionCode.a => (false, OpCodes.Cgt_Un, false),
                ConditionCode.l => (false, OpCodes.Clt, false),
                ConditionCode.ge => (false, OpCodes.Clt, true),
                ConditionCode.le => (false, OpCodes.Cgt, true),
                _ => (false, OpCodes.Cgt, false),
            };
            Load(swap ? right : left);
            Load(swap ? left : right);
            il.Emit(opcode);
            Negate(negate);
        }

        private void Negate(bool negate)
        {
            if (negate)
            {
                il.Emit(OpCodes.Ldc_I4_0);
                il.Emit(OpCodes.Ceq);
            }
        }

        // An instruction the translator leaves to the interpreter: RIP as the block loop sets it, the handler
        // through the instruction's slot in the block, then the block loop's early-end check.
        private void EmitInterpreted(int k)
        {
            WriteBack();
            FlushFlags();
            StoreRip(_instructions[k].NextIp);
            CallInterpreter(k);
            _flags = FlagSource.Unknown;
            EndIfBroken(k);
            Reload();
        }

        // The interpreter's handler for instruction k (counted first when the profile is on).
        private void CallInterpreter(int k)
        {
            if (ProfileInterpreted)
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, _instructionArray);
                il.Emit(OpCodes.Ldc_I4, k);
                il.Emit(OpCodes.Ldelema, typeof(DecodedInstruction));
                il.Emit(OpCodes.Call, X86Cpu.CountInterpretedMethod);
            }

            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _instructionArray);
            il.Emit(OpCodes.Ldc_I4, k);
            il.Emit(OpCodes.Ldelema, typeof(DecodedInstruction));
            il.Emit(OpCodes.Call, X86Cpu.ExecuteInterpretedMethod);
        }

        private void EndIfBroken(int k)
        {
            var next = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.BlockBrokenField);
            il.Emit(OpCodes.Brfalse, next);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Stfld, X86Cpu.BlockBrokenField);
            WriteBack(forget: false);
            FlushFlags(forget: false);
            il.Emit(OpCodes.Ldc_I4, k + 1);
            il.Emit(OpCodes.Ret);
            il.MarkLabel(next);
        }

        // The operand's linear address: the effective address, plus the segment base except where 64-bit mode
        // ignores it (ES, CS, SS, DS).
        private void Linear(ref DecodedInstruction d)
        {
            if (bitness == 64 && d.Segment < (int)SegmentRegister.Fs)
            {
                EffectiveAddress(ref d);
                return;
            }

            il.Emit(OpCodes.Ldarg_0);
            EffectiveAddress(ref d);
            il.Emit(OpCodes.Ldc_I4, (int)d.Segment);
            il.Emit(OpCodes.Call, X86Cpu.ToLinearMethod);
        }

        private void EffectiveAddress(ref DecodedInstruction d)
        {
            Constant(d.Displacement);
            if (d.Base != DecodedInstruction.NoRegister)
            {
                LoadRegister(d.Base);
                il.Emit(OpCodes.Add);
            }

            if (d.Index != DecodedInstruction.NoRegister)
            {
                LoadRegister(d.Index);
                if (d.ScaleShift != 0)
                {
                    il.Emit(OpCodes.Ldc_I4, (int)d.ScaleShift);
                    il.Emit(OpCodes.Shl);
                }

                il.Emit(OpCodes.Add);
            }

            if (d.AddressSize == 4)
            {
                il.Emit(OpCodes.Conv_U4);
                il.Emit(OpCodes.Conv_U8);
            }
            else if (d.AddressSize == 2)
            {
                il.Emit(OpCodes.Conv_U2);
                il.Emit(OpCodes.Conv_U8);
            }
        }

        private void RegisterAddress(int slot)
        {
            il.Emit(OpCodes.Ldloc, _registers);
            if (slot != 0)
            {
                il.Emit(OpCodes.Ldc_I4, slot * sizeof(ulong));
                il.Emit(OpCodes.Add);
            }
        }

        // Guest registers live in IL locals (which the .NET JIT keeps in host registers) between the points where
        // the vCPU's register file must be current: before anything that can fault or runs interpreter code, and at
        // every return. Invariant: each used register's local holds its current value; the register file holds it
        // too except for the registers written since the last write-back (a superset of them, in program order).
        private void LoadRegister(int slot) => il.Emit(OpCodes.Ldloc, _cached[slot]!);

        // Pops the value on the IL stack into the register's local.
        private void StoreRegister(int slot)
        {
            il.Emit(OpCodes.Stloc, _cached[slot]!);
            _written |= 1 << slot;
            _everWritten |= 1 << slot;
        }

        // The registers written since the last write-back go to the register file.
        private void WriteBack(bool forget = true)
        {
            for (var slot = 0; slot < 16; slot++)
            {
                if ((_written & (1 << slot)) != 0)
                {
                    RegisterAddress(slot);
                    il.Emit(OpCodes.Ldloc, _cached[slot]!);
                    il.Emit(OpCodes.Stind_I8);
                }
            }

            if (forget)
            {
                _written = 0;
            }
        }

        // Every used register's local from the register file (at entry, and after interpreter code changed it).
        private void Reload()
        {
            for (var slot = 0; slot < 16; slot++)
            {
                if (_cached[slot] is { } local)
                {
                    RegisterAddress(slot);
                    il.Emit(OpCodes.Ldind_I8);
                    il.Emit(OpCodes.Stloc, local);
                }
            }
        }

        private void DeclareRegisterLocals()
        {
            void Use(int slot) => _cached[slot] ??= il.DeclareLocal(typeof(ulong));
            foreach (ref var d in _instructions.AsSpan())
            {
                var form = Classify(d, bitness);
                if (form == Form.Interpreted)
                {
                    continue;
                }

                if (form == Form.Stack)
                {
                    Use(4);
                }

                if (d.Kind0 == OperandKind.Register || d.Op == Op.Lea)
                {
                    Use(d.Reg0 & 0xF);
                }

                if (d.Kind1 == OperandKind.Register)
                {
                    Use(d.Reg1 & 0xF);
                }

                if (d.Op is Op.ShlRI or Op.ShrRI or Op.SarRI)
                {
                    Use(1);
                }

                if (d.Base != DecodedInstruction.NoRegister)
                {
                    Use(d.Base);
                }

                if (d.Index != DecodedInstruction.NoRegister)
                {
                    Use(d.Index);
                }
            }
        }

        private void Mask(ulong mask)
        {
            if (mask == uint.MaxValue)
            {
                il.Emit(OpCodes.Conv_U4);
                il.Emit(OpCodes.Conv_U8);
            }
            else if (mask != ulong.MaxValue)
            {
                Constant(mask);
                il.Emit(OpCodes.And);
            }
        }

        private void Constant(ulong value) => il.Emit(OpCodes.Ldc_I8, unchecked((long)value));

        private void StoreRip(ulong rip) => StoreField(X86Cpu.RipField, () => Constant(rip));

        private void StoreField(System.Reflection.FieldInfo field, Action value)
        {
            il.Emit(OpCodes.Ldarg_0);
            value();
            il.Emit(OpCodes.Stfld, field);
        }
    }
}

using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.Intrinsics;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// The SSE and string forms of the translation: the XMM moves (MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU, the
/// non-temporal stores, MOVSS/MOVSD, MOVD/MOVQ), the integer and logical lane operations (PAND/PANDN/POR/PXOR and their
/// float twins, PADDx/PSUBx, PCMPEQx/PCMPGTx, PMINUB/PMAXUB/PMINSW/PMAXSW) and PMOVMSKB as
/// <see cref="Vector128"/> operations on the vCPU's XMM file; MOVS/STOS/LODS through the vCPU's in-page path.
/// </summary>
/// <remarks>
/// Each translated SSE instruction has two arms: the inline one, taken when the SSE gate is open (CR0.EM and CR0.TS
/// clear, CR4.OSFXSR set), a 16-byte operand of an aligned form is aligned and the soft TLB maps the operand for the
/// access within one page; and the interpreter's handler for the whole instruction otherwise, which raises #UD, #NM,
/// #GP or #PF exactly as tier 0 does, reaches MMIO or a watched code page, and may end the block. The inline arm
/// changes nothing before its last check, neither reads nor writes the flags and cannot fault.
/// </remarks>
internal static partial class BlockCompiler
{
    private static readonly FieldInfo ExtendedStateField = typeof(X86Cpu).GetField("_ext", BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly FieldInfo XmmFileField = typeof(CpuExtendedState).GetField(nameof(CpuExtendedState.Xmm))!;
    private static readonly FieldInfo XmmElementField = typeof(XmmFile).GetField("_element0", BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly MethodInfo CreateScalarMethod = typeof(Vector128).GetMethod(nameof(Vector128.CreateScalar), [typeof(ulong)])!;
    private static readonly MethodInfo ExtractMostSignificantBitsMethod = VectorMethod(nameof(Vector128.ExtractMostSignificantBits), typeof(byte), parameters: 1);

    // The lane operations: the Vector128 method, its lane type, and whether the source is its first argument (PANDN:
    // destination = ~destination & source).
    private static readonly Dictionary<Mnemonic, (MethodInfo Method, Type Lane, bool SourceFirst)> LaneOperations = new()
    {
        [Mnemonic.Pand] = Lane(nameof(Vector128.BitwiseAnd), typeof(byte)),
        [Mnemonic.Andps] = Lane(nameof(Vector128.BitwiseAnd), typeof(byte)),
        [Mnemonic.Andpd] = Lane(nameof(Vector128.BitwiseAnd), typeof(byte)),
        [Mnemonic.Pandn] = Lane(nameof(Vector128.AndNot), typeof(byte), sourceFirst: true),
        [Mnemonic.Andnps] = Lane(nameof(Vector128.AndNot), typeof(byte), sourceFirst: true),
        [Mnemonic.Andnpd] = Lane(nameof(Vector128.AndNot), typeof(byte), sourceFirst: true),
        [Mnemonic.Por] = Lane(nameof(Vector128.BitwiseOr), typeof(byte)),
        [Mnemonic.Orps] = Lane(nameof(Vector128.BitwiseOr), typeof(byte)),
        [Mnemonic.Orpd] = Lane(nameof(Vector128.BitwiseOr), typeof(byte)),
        [Mnemonic.Pxor] = Lane(nameof(Vector128.Xor), typeof(byte)),
        [Mnemonic.Xorps] = Lane(nameof(Vector128.Xor), typeof(byte)),
        [Mnemonic.Xorpd] = Lane(nameof(Vector128.Xor), typeof(byte)),
        [Mnemonic.Paddb] = Lane(nameof(Vector128.Add), typeof(byte)),
        [Mnemonic.Paddw] = Lane(nameof(Vector128.Add), typeof(ushort)),
        [Mnemonic.Paddd] = Lane(nameof(Vector128.Add), typeof(uint)),
        [Mnemonic.Paddq] = Lane(nameof(Vector128.Add), typeof(ulong)),
        [Mnemonic.Psubb] = Lane(nameof(Vector128.Subtract), typeof(byte)),
        [Mnemonic.Psubw] = Lane(nameof(Vector128.Subtract), typeof(ushort)),
        [Mnemonic.Psubd] = Lane(nameof(Vector128.Subtract), typeof(uint)),
        [Mnemonic.Psubq] = Lane(nameof(Vector128.Subtract), typeof(ulong)),
        [Mnemonic.Pcmpeqb] = Lane(nameof(Vector128.Equals), typeof(byte)),
        [Mnemonic.Pcmpeqw] = Lane(nameof(Vector128.Equals), typeof(ushort)),
        [Mnemonic.Pcmpeqd] = Lane(nameof(Vector128.Equals), typeof(uint)),
        [Mnemonic.Pcmpgtb] = Lane(nameof(Vector128.GreaterThan), typeof(sbyte)),
        [Mnemonic.Pcmpgtw] = Lane(nameof(Vector128.GreaterThan), typeof(short)),
        [Mnemonic.Pcmpgtd] = Lane(nameof(Vector128.GreaterThan), typeof(int)),
        [Mnemonic.Pminub] = Lane(nameof(Vector128.Min), typeof(byte)),
        [Mnemonic.Pmaxub] = Lane(nameof(Vector128.Max), typeof(byte)),
        [Mnemonic.Pminsw] = Lane(nameof(Vector128.Min), typeof(short)),
        [Mnemonic.Pmaxsw] = Lane(nameof(Vector128.Max), typeof(short)),
    };

    /// <summary>True for the SSE instructions translated inline (the rest call the interpreter's handler).</summary>
    private static bool IsTranslatedSse(in DecodedInstruction d) => d.Instruction.Mnemonic switch
    {
        Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movapd or Mnemonic.Movupd or Mnemonic.Movdqa or Mnemonic.Movdqu
            or Mnemonic.Movntps or Mnemonic.Movntpd or Mnemonic.Movntdq or Mnemonic.Movss or Mnemonic.Movsd
            or Mnemonic.Movd or Mnemonic.Movq or Mnemonic.Pmovmskb => true,
        var mnemonic => LaneOperations.ContainsKey(mnemonic),
    };

    private static (MethodInfo, Type, bool) Lane(string name, Type lane, bool sourceFirst = false) =>
        (VectorMethod(name, lane, parameters: 2), lane, sourceFirst);

    // Vector128's generic static method `name` over Vector128<lane> operands.
    private static MethodInfo VectorMethod(string name, Type lane, int parameters) =>
        typeof(Vector128).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Single(m => m.Name == name && m.IsGenericMethodDefinition && m.GetGenericArguments().Length == 1
                         && m.GetParameters().Length == parameters
                         && m.GetParameters().All(p => p.ParameterType.IsGenericType && p.ParameterType.GetGenericTypeDefinition() == typeof(Vector128<>)))
            .MakeGenericMethod(lane);

    // Vector128.As<from, to>: a reinterpretation, no code.
    private static MethodInfo AsMethod(Type from, Type to) =>
        typeof(Vector128).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Single(m => m.Name == nameof(Vector128.As) && m.GetGenericArguments().Length == 2)
            .MakeGenericMethod(from, to);

    private static bool IsUnalignedForm(Mnemonic mnemonic) => mnemonic is Mnemonic.Movups or Mnemonic.Movupd or Mnemonic.Movdqu;

    private static int XmmIndex(Register register) => register - Register.XMM0;

    /// <summary>The IL emission of the SSE and string forms (see the class remarks).</summary>
    private sealed partial class Emitter
    {
        private LocalBuilder? _xmm;
        private LocalBuilder? _vector;

        // The address of XMM0 in the vCPU's extended state, in a local for the block (declared when a block has
        // translated SSE instructions).
        private void DeclareXmmLocal()
        {
            foreach (ref var d in _instructions.AsSpan())
            {
                if (Classify(d, bitness) == Form.Sse)
                {
                    _xmm = il.DeclareLocal(typeof(Vector128<byte>).MakeByRefType());
                    _vector = il.DeclareLocal(typeof(Vector128<byte>));
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldfld, ExtendedStateField);
                    il.Emit(OpCodes.Ldflda, XmmFileField);
                    il.Emit(OpCodes.Ldflda, XmmElementField);
                    il.Emit(OpCodes.Stloc, _xmm);
                    return;
                }
            }
        }

        private void XmmAddress(Register register)
        {
            il.Emit(OpCodes.Ldloc, _xmm!);
            var index = XmmIndex(register);
            if (index != 0)
            {
                il.Emit(OpCodes.Ldc_I4, index * 16);
                il.Emit(OpCodes.Add);
            }
        }

        private void EmitSse(ref DecodedInstruction d, int k)
        {
            var slow = il.DefineLabel();
            var done = il.DefineLabel();

            // The gate: #UD or #NM are the interpreter's to raise.
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.Cr0Field);
            Constant(X86Cpu.Cr0Em | X86Cpu.Cr0Ts);
            il.Emit(OpCodes.And);
            il.Emit(OpCodes.Brtrue, slow);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, X86Cpu.Cr4Field);
            Constant(X86Cpu.Cr4Osfxsr);
            il.Emit(OpCodes.And);
            il.Emit(OpCodes.Brfalse, slow);

            ref var i = ref d.Instruction;
            switch (i.Mnemonic)
            {
                case Mnemonic.Movd or Mnemonic.Movq:
                    EmitIntegerScalarMove(ref d, slow);
                    break;
                case Mnemonic.Movss or Mnemonic.Movsd:
                    EmitScalarMove(ref d, i.Mnemonic == Mnemonic.Movss ? 4 : 8, slow);
                    break;
                case Mnemonic.Pmovmskb:
                    XmmAddress(i.Op1Register);
                    il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
                    il.Emit(OpCodes.Call, ExtractMostSignificantBitsMethod);
                    il.Emit(OpCodes.Conv_U8);
                    StoreRegister(d.Reg0 & 0xF);
                    break;
                case Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movapd or Mnemonic.Movupd or Mnemonic.Movdqa or Mnemonic.Movdqu
                    or Mnemonic.Movntps or Mnemonic.Movntpd or Mnemonic.Movntdq:
                    EmitWholeMove(ref d, slow);
                    break;
                default:
                    EmitLaneOperation(ref d, slow);
                    break;
            }

            il.Emit(OpCodes.Br, done);
            il.MarkLabel(slow);
            EmitInterpreterArm(k);
            il.MarkLabel(done);
        }

        // The whole instruction through the interpreter's handler, from a point where nothing of it has been done:
        // registers and the flag record made current in the vCPU (kept pending in the locals too), RIP as the block
        // loop sets it, the block's early end checked after, the locals reloaded.
        private void EmitInterpreterArm(int k)
        {
            WriteBack(forget: false);
            FlushFlags(forget: false);
            StoreRip(_instructions[k].NextIp);
            CallInterpreter(k);
            EndIfBroken(k);
            Reload();
        }

        // Stores the host pointer of the memory operand for `size` bytes in _pointer (`write`: the TLB allows writing),
        // or branches to `slow` (a 16-byte operand of an aligned form not 16-byte aligned; a TLB miss, a page crossing,
        // MMIO or a watched code page). The IL stack is empty at the branch. Returns the local holding the operand's
        // linear address, for the slow path.
        private LocalBuilder MemoryPointer(ref DecodedInstruction d, int size, bool write, bool aligned, System.Reflection.Emit.Label slow)
        {
            var linear = il.DeclareLocal(typeof(ulong));
            Linear(ref d);
            il.Emit(OpCodes.Stloc, linear);
            if (aligned)
            {
                il.Emit(OpCodes.Ldloc, linear);
                Constant(15);
                il.Emit(OpCodes.And);
                il.Emit(OpCodes.Brtrue, slow);
            }

            HostPointer(linear, size, write, slow);
            return linear;
        }

        // MOVSS/MOVSD/MOVD/MOVQ m, xmm: the low 4 or 8 bytes of the source XMM register to the memory operand through
        // the TLB, or a branch to `slow`.
        // The memory operand's low `size` bytes (4 or 8), zero-extended to 128 bits, into the destination XMM register
        // (MOVSS/MOVSD/MOVD/MOVQ loads); a TLB miss branches to `slow`.
        private void LoadXmmLowElement(ref DecodedInstruction d, int size, System.Reflection.Emit.Label slow)
        {
            MemoryPointer(ref d, size, write: false, aligned: false, slow);
            XmmAddress(d.Instruction.Op0Register);
            il.Emit(OpCodes.Ldloc, _pointer);
            il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(size == 4 ? OpCodes.Ldind_U4 : OpCodes.Ldind_I8);
            il.Emit(OpCodes.Conv_U8);
            il.Emit(OpCodes.Call, CreateScalarMethod);
            il.Emit(OpCodes.Stobj, typeof(Vector128<byte>));
        }

        private void StoreXmmLowElement(ref DecodedInstruction d, int size, System.Reflection.Emit.Label slow)
        {
            MemoryPointer(ref d, size, write: true, aligned: false, slow);
            il.Emit(OpCodes.Ldloc, _pointer);
            XmmAddress(d.Instruction.Op1Register);
            il.Emit(size == 4 ? OpCodes.Ldind_U4 : OpCodes.Ldind_I8);
            il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(size == 4 ? OpCodes.Stind_I4 : OpCodes.Stind_I8);
        }

        // The soft TLB's host pointer for `size` bytes at the linear address in `linear` into _pointer, or a branch to
        // `miss` when the TLB has none (a miss, a page crossing, MMIO, a watched code page for a write).
        private void HostPointer(LocalBuilder linear, int size, bool write, System.Reflection.Emit.Label miss)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, linear);
            il.Emit(OpCodes.Ldc_I4, size);
            il.Emit(OpCodes.Call, write ? X86Cpu.WritableHostPointerMethod : X86Cpu.ReadableHostPointerMethod);
            il.Emit(OpCodes.Stloc, _pointer);
            il.Emit(OpCodes.Ldloc, _pointer);
            il.Emit(OpCodes.Brfalse, miss);
        }

        // MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU/MOVNT*: 16 bytes, register or memory either side.
        private void EmitWholeMove(ref DecodedInstruction d, System.Reflection.Emit.Label slow)
        {
            ref var i = ref d.Instruction;
            var aligned = !IsUnalignedForm(i.Mnemonic);
            if (i.Op0Kind == OpKind.Memory)
            {
                MemoryPointer(ref d, 16, write: true, aligned, slow);
                il.Emit(OpCodes.Ldloc, _pointer);
                XmmAddress(i.Op1Register);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Stobj, typeof(Vector128<byte>));
                return;
            }

            if (i.Op1Kind == OpKind.Memory)
            {
                MemoryPointer(ref d, 16, write: false, aligned, slow);
                XmmAddress(i.Op0Register);
                il.Emit(OpCodes.Ldloc, _pointer);
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
            }
            else
            {
                XmmAddress(i.Op0Register);
                XmmAddress(i.Op1Register);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
            }

            il.Emit(OpCodes.Stobj, typeof(Vector128<byte>));
        }

        // MOVSS/MOVSD: a load zeroes the rest of the register, a store writes the element, register to register merges
        // the low element (a plain copy of its bytes inside the XMM file).
        private void EmitScalarMove(ref DecodedInstruction d, int size, System.Reflection.Emit.Label slow)
        {
            ref var i = ref d.Instruction;
            var load = size == 4 ? OpCodes.Ldind_U4 : OpCodes.Ldind_I8;
            var store = size == 4 ? OpCodes.Stind_I4 : OpCodes.Stind_I8;
            if (i.Op0Kind == OpKind.Memory)
            {
                StoreXmmLowElement(ref d, size, slow);
                return;
            }

            if (i.Op1Kind == OpKind.Memory)
            {
                LoadXmmLowElement(ref d, size, slow);
                return;
            }

            XmmAddress(i.Op0Register);
            XmmAddress(i.Op1Register);
            il.Emit(load);
            il.Emit(store);
        }

        // MOVD/MOVQ between an XMM register and a general register or memory, and MOVQ xmm, xmm: into XMM the value
        // zero-extended to 128 bits; out of it the low 4 or 8 bytes (a 32-bit general register zero-extended).
        private void EmitIntegerScalarMove(ref DecodedInstruction d, System.Reflection.Emit.Label slow)
        {
            ref var i = ref d.Instruction;
            var size = i.Mnemonic == Mnemonic.Movd ? 4 : 8;
            var load = size == 4 ? OpCodes.Ldind_U4 : OpCodes.Ldind_I8;
            if (i.Op0Kind == OpKind.Register && i.Op0Register.IsXMM())
            {
                if (i.Op1Kind == OpKind.Memory)
                {
                    LoadXmmLowElement(ref d, size, slow);
                    return;
                }

                if (i.Op1Register.IsXMM())
                {
                    XmmAddress(i.Op0Register);
                    XmmAddress(i.Op1Register);
                    il.Emit(OpCodes.Ldind_I8);
                }
                else
                {
                    XmmAddress(i.Op0Register);
                    LoadRegister(d.Reg1 & 0xF);
                }

                if (size == 4)
                {
                    il.Emit(OpCodes.Conv_U4);
                }

                il.Emit(OpCodes.Conv_U8);
                il.Emit(OpCodes.Call, CreateScalarMethod);
                il.Emit(OpCodes.Stobj, typeof(Vector128<byte>));
                return;
            }

            if (i.Op0Kind == OpKind.Memory)
            {
                StoreXmmLowElement(ref d, size, slow);
                return;
            }

            XmmAddress(i.Op1Register);
            il.Emit(load);
            if (size == 4)
            {
                il.Emit(OpCodes.Conv_U8);
            }

            StoreRegister(d.Reg0 & 0xF);
        }

        // destination = op(destination, source) lane by lane (PANDN: op(source, destination)), the source an XMM
        // register or a 16-byte-aligned m128.
        private void EmitLaneOperation(ref DecodedInstruction d, System.Reflection.Emit.Label slow)
        {
            ref var i = ref d.Instruction;
            var (method, lane, sourceFirst) = LaneOperations[i.Mnemonic];
            if (i.Op1Kind == OpKind.Memory)
            {
                MemoryPointer(ref d, 16, write: false, aligned: !IsUnalignedForm(i.Mnemonic), slow);
                il.Emit(OpCodes.Ldloc, _pointer);
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
            }
            else
            {
                XmmAddress(i.Op1Register);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
            }

            il.Emit(OpCodes.Stloc, _vector!);
            var toLane = lane == typeof(byte) ? null : AsMethod(typeof(byte), lane);
            void Push(Action load)
            {
                load();
                if (toLane is not null)
                {
                    il.Emit(OpCodes.Call, toLane);
                }
            }

            var destination = i.Op0Register;
            void Destination()
            {
                XmmAddress(destination);
                il.Emit(OpCodes.Ldobj, typeof(Vector128<byte>));
            }

            void Source() => il.Emit(OpCodes.Ldloc, _vector!);

            XmmAddress(i.Op0Register);
            Push(sourceFirst ? Source : Destination);
            Push(sourceFirst ? Destination : Source);
            il.Emit(OpCodes.Call, method);
            if (toLane is not null)
            {
                il.Emit(OpCodes.Call, AsMethod(lane, typeof(byte)));
            }

            il.Emit(OpCodes.Stobj, typeof(Vector128<byte>));
        }

        // MOVS/STOS/LODS (any REP): the vCPU's in-page path with the registers current in it; when it declines, the
        // interpreter's handler (which runs the instruction from its first element: the in-page path changed nothing).
        // Neither reads or writes the flags, so the flag record stays pending in the locals but for the handler's arm.
        private void EmitString(int k)
        {
            var done = il.DefineLabel();
            WriteBack();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _instructionArray);
            il.Emit(OpCodes.Ldc_I4, k);
            il.Emit(OpCodes.Ldelema, typeof(DecodedInstruction));
            il.Emit(OpCodes.Call, X86Cpu.TryStringInPageMethod);
            il.Emit(OpCodes.Brtrue, done);
            FlushFlags(forget: false);
            StoreRip(_instructions[k].NextIp);
            CallInterpreter(k);
            EndIfBroken(k);
            il.MarkLabel(done);
            Reload();
        }
    }
}

using System.Numerics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>Integer arithmetic, logic, shifts, rotates, multiply/divide, bit operations and atomics.</summary>
public sealed unsafe partial class X86Cpu // unsafe: TLB hits are host pointers into guest RAM.
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Arith(ref DecodedInstruction d, FlagOp op)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var a = ReadDestination(ref d, out var linear);
        var b = ReadOperand(ref d, 1) & mask;
        ulong result;
        switch (op)
        {
            case FlagOp.Add:
                result = (a + b) & mask;
                break;
            case FlagOp.Sub:
                result = (a - b) & mask;
                break;
            case FlagOp.Adc:
                _flagCarryIn = CarryFlag();
                result = (a + b + (_flagCarryIn ? 1UL : 0)) & mask;
                break;
            default:
                _flagCarryIn = CarryFlag();
                result = (a - b - (_flagCarryIn ? 1UL : 0)) & mask;
                break;
        }

        if (d.Instruction.HasLockPrefix && linear != 0)
        {
            result = LockedArith(d.MemorySize, op, linear, ref a, b, mask, result);
        }
        else
        {
            WriteDestination(ref d, linear, result);
        }

        SetFlags(op, bits, a, b, result);
    }

    /// <summary>
    /// The store of a LOCK ADD/SUB/ADC/SBB that computed <paramref name="result"/> from <paramref name="a"/>: retried on the
    /// operand's new value until no other vCPU wrote it in between (kept out of line so the hot unlocked path stays small).
    /// </summary>
    /// <returns>The result stored; <paramref name="a"/> is the value it was computed from.</returns>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong LockedArith(int size, FlagOp op, ulong linear, ref ulong a, ulong b, ulong mask, ulong result)
    {
        var carry = op is FlagOp.Adc or FlagOp.Sbb && _flagCarryIn ? 1UL : 0;
        while (!TryLockedStore(linear, size, a, result))
        {
            a = ReadMemory(linear, size);
            result = op is FlagOp.Add or FlagOp.Adc ? (a + b + carry) & mask : (a - b - carry) & mask;
        }

        return result;
    }

    /// <summary>The store of a LOCK OR/AND/XOR, retried as <see cref="LockedArith"/> is.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong LockedLogic(int size, int kind, ulong linear, ref ulong a, ulong b, ulong result)
    {
        while (!TryLockedStore(linear, size, a, result))
        {
            a = ReadMemory(linear, size);
            result = kind == 0 ? a | b : kind == 1 ? a & b : a ^ b;
        }

        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Compare(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var a = ReadOperand(ref d, 0);
        var b = ReadOperand(ref d, 1) & mask;
        SetFlags(FlagOp.Sub, bits, a, b, (a - b) & mask);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Logic(ref DecodedInstruction d, int kind)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var a = ReadDestination(ref d, out var linear);
        var b = ReadOperand(ref d, 1) & mask;
        var result = kind == 0 ? a | b : kind == 1 ? a & b : a ^ b;
        if (d.Instruction.HasLockPrefix && linear != 0)
        {
            result = LockedLogic(d.MemorySize, kind, linear, ref a, b, result);
        }
        else
        {
            WriteDestination(ref d, linear, result);
        }

        SetFlags(FlagOp.Logic, bits, a, b, result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TestOp(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var a = ReadOperand(ref d, 0);
        var b = ReadOperand(ref d, 1) & MaskOf(bits);
        SetFlags(FlagOp.Logic, bits, a, b, a & b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void IncDec(ref DecodedInstruction d, FlagOp op)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var a = ReadDestination(ref d, out var linear);
        var result = (op == FlagOp.Inc ? a + 1 : a - 1) & mask;
        var carry = CarryFlag();
        if (d.Instruction.HasLockPrefix && linear != 0)
        {
            result = LockedArith(d.MemorySize, op == FlagOp.Inc ? FlagOp.Add : FlagOp.Sub, linear, ref a, 1, mask, result);
        }
        else
        {
            WriteDestination(ref d, linear, result);
        }

        SetFlags(op, bits, a, 1, result);
        _flagCarryIn = carry;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Negate(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var a = ReadDestination(ref d, out var linear);
        var result = (0 - a) & mask;
        if (d.Instruction.HasLockPrefix && linear != 0)
        {
            while (!TryLockedStore(linear, d.MemorySize, a, result))
            {
                a = ReadMemory(linear, d.MemorySize);
                result = (0 - a) & mask;
            }
        }
        else
        {
            WriteDestination(ref d, linear, result);
        }

        SetFlags(FlagOp.Sub, bits, 0, a, result);
    }

    /// <summary>
    /// The store of a LOCK-prefixed read-modify-write that read <paramref name="expected"/>: a compare-and-swap on the host
    /// bytes when the operand is aligned and has a writable TLB entry, else a compare and store under the VM-wide split
    /// lock (the monitor of the VM's shared code-page map) (an operand that crosses a page, is unaligned, or lies on a page holding decoded code, whose stores must go
    /// through the watcher). False when another vCPU changed the operand since it was read: the caller recomputes from the
    /// new value and tries again, so no update is lost. The split-lock path is atomic against other split-lock and
    /// compare-and-swap stores only if they do not land between its read and its write — the window of one slow store.
    /// </summary>
    private bool TryLockedStore(ulong linear, int size, ulong expected, ulong value)
    {
        var host = AtomicTarget(linear, size);
        if (host is null && (linear & ((uint)size - 1)) == 0 && _mmu.TryTranslate(new Gva(linear), GuestAccess.Write, out _, out _))
        {
            // The operand had no writable TLB entry yet (first touch, or after a shootdown): the walk for write fills it
            // without storing, so the store can still be the compare-and-swap that other vCPUs' locked stores race
            // against. A page holding decoded code gets no writable entry and takes the split-lock path below.
            host = AtomicTarget(linear, size);
        }

        if (host is not null)
        {
            return size switch
            {
                8 => Interlocked.CompareExchange(ref Unsafe.AsRef<long>(host), (long)value, (long)expected) == (long)expected,
                4 => Interlocked.CompareExchange(ref Unsafe.AsRef<int>(host), (int)value, (int)expected) == (int)expected,
                2 => Interlocked.CompareExchange(ref Unsafe.AsRef<ushort>(host), (ushort)value, (ushort)expected) == (ushort)expected,
                _ => Interlocked.CompareExchange(ref Unsafe.AsRef<byte>(host), (byte)value, (byte)expected) == (byte)expected,
            };
        }

        EnterSplitLock();
        try
        {
            if (ReadMemory(linear, size) != expected)
            {
                return false;
            }

            WriteMemory(linear, size, value);
            return true;
        }
        finally
        {
            Monitor.Exit(_codeMap);
        }
    }

    /// <summary>
    /// Takes the VM-wide split lock. While it waits the vCPU keeps acknowledging TLB shootdowns, as at a block
    /// boundary: the holder's store may fault in a page whose notifier shoots down every vCPU in guest mode, this one
    /// included, and waiting without answering would deadlock.
    /// </summary>
    private void EnterSplitLock()
    {
        var spinner = default(SpinWait);
        while (!Monitor.TryEnter(_codeMap))
        {
            _mmu.Port.ServiceRequests();
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Exchange(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        if (i.Op0Kind == OpKind.Register && i.Op1Kind == OpKind.Register)
        {
            var first = ReadRegister(i.Op0Register);
            var second = ReadRegister(i.Op1Register);
            WriteRegister(i.Op0Register, second);
            WriteRegister(i.Op1Register, first);
            return;
        }

        var register = i.Op0Kind == OpKind.Register ? i.Op0Register : i.Op1Register;
        var linear = Linear(ref d);
        var host = d.Size >= 4 ? AtomicTarget(linear, d.Size) : null;
        ulong old;
        var value = ReadRegister(register);
        if (host is not null)
        {
            old = d.Size == 8 ? (ulong)Interlocked.Exchange(ref Unsafe.AsRef<long>(host), (long)value)
                : (uint)Interlocked.Exchange(ref Unsafe.AsRef<int>(host), (int)value);
        }
        else
        {
            // XCHG with memory is locked whether or not it has the prefix: bytes, words and operands without a writable
            // TLB entry swap through the same compare-and-swap as the LOCK forms.
            old = ReadMemory(linear, d.Size);
            while (!TryLockedStore(linear, d.Size, old, value))
            {
                old = ReadMemory(linear, d.Size);
            }
        }

        WriteRegister(register, old);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void CompareExchange(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var accumulator = Gpr(0) & mask;
        var source = ReadOperand(ref d, 1);
        var current = ReadDestination(ref d, out var linear);
        if (d.Instruction.Op0Kind == OpKind.Memory)
        {
            // Compare and store as one atomic step against the other vCPUs (what a guest spinlock relies on).
            while (current == accumulator && !TryLockedStore(linear, d.MemorySize, current, source & mask))
            {
                current = ReadMemory(linear, d.MemorySize);
            }

            if (current != accumulator)
            {
                WriteGpr(0, d.Size, current);
            }
        }
        else if (current == accumulator)
        {
            WriteDestination(ref d, linear, source);
        }
        else
        {
            WriteGpr(0, d.Size, current);
        }

        SetFlags(FlagOp.Sub, bits, accumulator, current, (accumulator - current) & mask);
    }

    private void CompareExchangeDouble(ref DecodedInstruction d, int half)
    {
        var linear = Linear(ref d);
        if (half == 8 && (linear & 15) != 0)
        {
            RaiseFault(ExceptionVector.GeneralProtection, 0);
        }

        var mask = MaskOf(half * 8);
        if (half == 4 && AtomicTarget(linear, 8) is var host && host is not null)
        {
            // CMPXCHG8B on an aligned, writable quadword: one 64-bit compare-and-swap.
            var expected = (Gpr(0) & mask) | ((Gpr(2) & mask) << 32);
            var replacement = (Gpr(3) & mask) | ((Gpr(1) & mask) << 32);
            var old = (ulong)Interlocked.CompareExchange(ref Unsafe.AsRef<long>(host), (long)replacement, (long)expected);
            if (old != expected)
            {
                WriteGpr(0, 4, old & mask);
                WriteGpr(2, 4, old >> 32);
            }

            WriteFlags(FlagZf, old == expected ? FlagZf : 0);
            return;
        }

        // CMPXCHG16B (no 128-bit compare-and-swap here) and the slow cases: under the VM-wide split lock.
        EnterSplitLock();
        try
        {
            CompareExchangeDoubleLocked(linear, half, mask);
        }
        finally
        {
            Monitor.Exit(_codeMap);
        }
    }

    private void CompareExchangeDoubleLocked(ulong linear, int half, ulong mask)
    {
        var low = ReadMemory(linear, half);
        var high = ReadMemory(linear + (ulong)half, half);
        var equal = low == (Gpr(0) & mask) && high == (Gpr(2) & mask);
        if (equal)
        {
            WriteMemory(linear, half, Gpr(3) & mask);
            WriteMemory(linear + (ulong)half, half, Gpr(1) & mask);
        }
        else
        {
            WriteMemory(linear, half, low);
            WriteMemory(linear + (ulong)half, half, high);
            WriteGpr(0, half, low);
            WriteGpr(2, half, high);
        }

        WriteFlags(FlagZf, equal ? FlagZf : 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ExchangeAdd(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var source = ReadOperand(ref d, 1);
        var destination = ReadDestination(ref d, out var linear);
        var sum = (destination + source) & mask;
        if (d.Instruction.Op0Kind == OpKind.Memory && d.Size >= 4 && AtomicTarget(linear, d.Size) is var host && host is not null)
        {
            destination = d.Size == 8 ? (ulong)Interlocked.Add(ref Unsafe.AsRef<long>(host), (long)source) - source
                : (uint)(Interlocked.Add(ref Unsafe.AsRef<int>(host), (int)source) - (int)source);
            sum = (destination + source) & mask;
        }
        else if (d.Instruction.Op0Kind == OpKind.Memory)
        {
            // Bytes, words and operands without a writable TLB entry: compare-and-swap (or the split lock) until it sticks.
            while (!TryLockedStore(linear, d.MemorySize, destination, sum))
            {
                destination = ReadMemory(linear, d.MemorySize);
                sum = (destination + source) & mask;
            }
        }
        else
        {
            WriteDestination(ref d, linear, sum);
        }

        WriteRegister(d.Instruction.Op1Register, destination);
        SetFlags(FlagOp.Add, bits, destination, source, sum);
    }

    private int ShiftCount(ref DecodedInstruction d, int operand)
    {
        var count = (int)ReadOperand(ref d, operand);
        return count & (d.Size == 8 ? 63 : 31);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Shift(ref DecodedInstruction d)
    {
        var count = ShiftCount(ref d, 1);
        if (count == 0)
        {
            WriteBackUnshifted(ref d);
            return;
        }

        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var value = ReadDestination(ref d, out var linear);
        ulong result;
        FlagOp op;
        switch (d.Op)
        {
            case Op.Shl:
                result = count >= bits ? 0 : (value << count) & mask;
                op = FlagOp.Shl;
                break;
            case Op.Shr:
                result = count >= bits ? 0 : value >> count;
                op = FlagOp.Shr;
                break;
            default:
                result = (ulong)(SignExtend(value, bits) >> Math.Min(count, 63)) & mask;
                op = FlagOp.Sar;
                break;
        }

        WriteDestination(ref d, linear, result);
        if (count > bits)
        {
            // Only 8/16-bit operands can shift past their width; CF is then undefined: report it clear.
            SetFlags(FlagOp.Logic, bits, value, (ulong)count, result);
            return;
        }

        SetFlags(op, bits, value, (ulong)count, result);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Rotate(ref DecodedInstruction d)
    {
        var raw = ShiftCount(ref d, 1);
        if (raw == 0)
        {
            WriteBackUnshifted(ref d);
            return;
        }

        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var value = ReadDestination(ref d, out var linear);
        var carry = CarryFlag();
        ulong result;
        bool newCarry;
        bool overflow;
        switch (d.Op)
        {
            case Op.Rol:
            {
                var count = raw % bits;
                result = count == 0 ? value : ((value << count) | (value >> (bits - count))) & mask;
                newCarry = (result & 1) != 0;
                overflow = (((result >> (bits - 1)) & 1) != 0) != newCarry;
                break;
            }

            case Op.Ror:
            {
                var count = raw % bits;
                result = count == 0 ? value : ((value >> count) | (value << (bits - count))) & mask;
                newCarry = ((result >> (bits - 1)) & 1) != 0;
                overflow = newCarry != (((result >> (bits - 2)) & 1) != 0);
                break;
            }

            case Op.Rcl:
            {
                var count = raw % (bits + 1);
                if (count == 0) { return; }
                result = value;
                newCarry = carry;
                for (var n = 0; n < count; n++)
                {
                    var top = ((result >> (bits - 1)) & 1) != 0;
                    result = ((result << 1) | (newCarry ? 1UL : 0)) & mask;
                    newCarry = top;
                }

                overflow = (((result >> (bits - 1)) & 1) != 0) != newCarry;
                break;
            }

            default:
            {
                var count = raw % (bits + 1);
                if (count == 0) { return; }
                result = value;
                newCarry = carry;
                overflow = (((value >> (bits - 1)) & 1) != 0) != carry;
                for (var n = 0; n < count; n++)
                {
                    var low = (result & 1) != 0;
                    result = (result >> 1) | (newCarry ? 1UL << (bits - 1) : 0);
                    newCarry = low;
                }

                break;
            }
        }

        WriteDestination(ref d, linear, result);
        WriteFlags(FlagCf | FlagOf, (newCarry ? FlagCf : 0) | (overflow ? FlagOf : 0));
    }

    /// <summary>A shift or rotate by a masked count of 0 still writes a 32-bit register destination, zeroing its upper half.</summary>
    private void WriteBackUnshifted(ref DecodedInstruction d)
    {
        if (d.Size == 4 && d.Instruction.Op0Kind == OpKind.Register)
        {
            WriteRegister(d.Instruction.Op0Register, ReadRegister(d.Instruction.Op0Register));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DoubleShift(ref DecodedInstruction d)
    {
        var count = ShiftCount(ref d, 2);
        if (count == 0)
        {
            WriteBackUnshifted(ref d);
            return;
        }

        var bits = d.Size * 8;
        var mask = MaskOf(bits);
        var value = ReadDestination(ref d, out var linear);
        var fill = ReadRegister(d.Instruction.Op1Register);
        if (count > bits)
        {
            // Undefined result for 16-bit operands shifted past 16: leave the destination, flags undefined.
            return;
        }

        ulong result;
        bool carry;
        if (d.Op == Op.Shld)
        {
            result = count == bits ? fill : ((value << count) | (fill >> (bits - count))) & mask;
            carry = ((value >> (bits - count)) & 1) != 0;
        }
        else
        {
            result = count == bits ? fill : ((value >> count) | (fill << (bits - count))) & mask;
            carry = ((value >> (count - 1)) & 1) != 0;
        }

        WriteDestination(ref d, linear, result);
        var overflow = ((result ^ value) >> (bits - 1) & 1) != 0;
        SetFlags(FlagOp.Logic, bits, value, fill, result);
        MaterializeFlags();
        _rflags = (_rflags & ~(FlagCf | FlagOf)) | (carry ? FlagCf : 0) | (overflow ? FlagOf : 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Multiply(ref DecodedInstruction d, bool signed)
    {
        var size = d.Size;
        var bits = size * 8;
        var source = ReadOperand(ref d, 0);
        bool overflow;
        ulong low;
        if (size == 8)
        {
            ulong high;
            if (signed)
            {
                var product = (Int128)(long)Gpr(0) * (long)source;
                low = (ulong)product;
                high = (ulong)(product >> 64);
                overflow = product != (long)low;
            }
            else
            {
                high = Math.BigMul(Gpr(0), source, out low);
                overflow = high != 0;
            }

            Gpr(0) = low;
            Gpr(2) = high;
        }
        else
        {
            var mask = MaskOf(bits);
            var accumulator = Gpr(0) & mask;
            ulong product;
            if (signed)
            {
                var wide = SignExtend(accumulator, bits) * SignExtend(source & mask, bits);
                product = (ulong)wide;
                overflow = wide != SignExtend(product & mask, bits);
            }
            else
            {
                product = accumulator * (source & mask);
                overflow = (product >> bits) != 0;
            }

            low = product & mask;
            if (size == 1)
            {
                WriteGpr(0, 2, product & 0xFFFF);
            }
            else
            {
                WriteGpr(0, size, low);
                WriteGpr(2, size, (product >> bits) & mask);
            }
        }

        SetMultiplyFlags(bits, low, overflow);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MultiplyTruncating(ref DecodedInstruction d)
    {
        var size = d.Size;
        var bits = size * 8;
        var mask = MaskOf(bits);
        var a = d.Op == Op.Imul2 ? ReadOperand(ref d, 0) : ReadOperand(ref d, 1);
        var b = d.Op == Op.Imul2 ? ReadOperand(ref d, 1) : ReadOperand(ref d, 2);
        ulong result;
        bool overflow;
        if (size == 8)
        {
            var product = (Int128)(long)a * (long)b;
            result = (ulong)product;
            overflow = product != (long)result;
        }
        else
        {
            var wide = SignExtend(a & mask, bits) * SignExtend(b & mask, bits);
            result = (ulong)wide & mask;
            overflow = wide != SignExtend(result, bits);
        }

        WriteRegister(d.Instruction.Op0Register, result);
        SetMultiplyFlags(bits, result, overflow);
    }

    private void SetMultiplyFlags(int bits, ulong low, bool overflow)
    {
        // CF = OF = overflow; SF/ZF/PF follow the low half and AF is clear (architecturally undefined).
        SetFlags(FlagOp.Mul, bits, 0, overflow ? 1UL : 0, low & MaskOf(bits));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Divide(ref DecodedInstruction d, bool signed)
    {
        var size = d.Size;
        var bits = size * 8;
        var mask = MaskOf(bits);
        var divisor = ReadOperand(ref d, 0) & mask;
        if (divisor == 0)
        {
            RaiseFault(ExceptionVector.DivideError);
        }

        if (size == 8)
        {
            var dividend = ((UInt128)Gpr(2) << 64) | Gpr(0);
            if (signed)
            {
                var signedDividend = (Int128)dividend;

                // Int128.MinValue / -1 overflows in .NET too (an OverflowException): on x86 it is #DE.
                if ((long)divisor == -1 && signedDividend == Int128.MinValue)
                {
                    RaiseFault(ExceptionVector.DivideError);
                }

                var quotient = signedDividend / (long)divisor;
                if (quotient > long.MaxValue || quotient < long.MinValue)
                {
                    RaiseFault(ExceptionVector.DivideError);
                }

                Gpr(0) = (ulong)(long)quotient;
                Gpr(2) = (ulong)(long)(signedDividend % (long)divisor);
            }
            else
            {
                var quotient = dividend / divisor;
                if (quotient > ulong.MaxValue)
                {
                    RaiseFault(ExceptionVector.DivideError);
                }

                Gpr(0) = (ulong)quotient;
                Gpr(2) = (ulong)(dividend % divisor);
            }

            return;
        }

        var wideDividend = size == 1 ? Gpr(0) & 0xFFFF : ((Gpr(2) & mask) << bits) | (Gpr(0) & mask);
        ulong q;
        ulong r;
        if (signed)
        {
            var dividend = SignExtend(wideDividend, bits * 2);
            var sd = SignExtend(divisor, bits);

            // long.MinValue / -1 (a 32-bit IDIV of 0x80000000_00000000) overflows in .NET too: on x86 it is #DE.
            if (sd == -1 && dividend == long.MinValue)
            {
                RaiseFault(ExceptionVector.DivideError);
            }

            var quotient = dividend / sd;
            if (quotient > SignExtend(mask >> 1, bits) || quotient < -SignExtend(mask >> 1, bits) - 1)
            {
                RaiseFault(ExceptionVector.DivideError);
            }

            q = (ulong)quotient & mask;
            r = (ulong)(dividend % sd) & mask;
        }
        else
        {
            var quotient = wideDividend / divisor;
            if (quotient > mask)
            {
                RaiseFault(ExceptionVector.DivideError);
            }

            q = quotient;
            r = wideDividend % divisor;
        }

        if (size == 1)
        {
            WriteGpr(0, 2, (r << 8) | q);
        }
        else
        {
            WriteGpr(0, size, q);
            WriteGpr(2, size, r);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BitTest(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var bits = d.Size * 8;
        var offset = ReadOperand(ref d, 1);
        ulong value;
        ulong linear = 0;
        int bit;
        if (i.Op0Kind == OpKind.Register)
        {
            value = ReadRegister(i.Op0Register);
            bit = (int)(offset & (ulong)(bits - 1));
        }
        else
        {
            var baseLinear = Linear(ref d);
            if (i.Op1Kind == OpKind.Register)
            {
                // A register bit offset addresses memory beyond the operand (signed, in operand-size units).
                var signedOffset = SignExtend(offset & MaskOf(bits), bits);
                var unit = signedOffset >> (bits == 64 ? 6 : bits == 32 ? 5 : 4);
                baseLinear = (ulong)((long)baseLinear + (unit * (bits / 8)));
                if (_bitness != 64) { baseLinear = (uint)baseLinear; }
            }

            bit = (int)(offset & (ulong)(bits - 1));
            linear = baseLinear;
            value = ReadMemory(linear, d.Size);
        }

        var set = ((value >> bit) & 1) != 0;
        var updated = BitTestResult(d.Op, value, bit);
        if (d.Op != Op.Bt)
        {
            if (i.Op0Kind == OpKind.Register) { WriteRegister(i.Op0Register, updated); }
            else if (!i.HasLockPrefix) { WriteMemory(linear, d.Size, updated); }
            else
            {
                while (!TryLockedStore(linear, d.Size, value, updated))
                {
                    value = ReadMemory(linear, d.Size);
                    set = ((value >> bit) & 1) != 0;
                    updated = BitTestResult(d.Op, value, bit);
                }
            }
        }

        WriteFlags(FlagCf, set ? FlagCf : 0);
    }

    private static ulong BitTestResult(Op op, ulong value, int bit) => op switch
    {
        Op.Bts => value | (1UL << bit),
        Op.Btr => value & ~(1UL << bit),
        Op.Btc => value ^ (1UL << bit),
        _ => value,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BitScan(ref DecodedInstruction d)
    {
        var bits = d.Size * 8;
        var source = ReadOperand(ref d, 1) & MaskOf(bits);
        var register = d.Instruction.Op0Register;
        switch (d.Op)
        {
            case Op.Bsf:
            case Op.Bsr:
                if (source == 0)
                {
                    WriteFlags(FlagZf, FlagZf);
                    return;
                }

                WriteRegister(register, d.Op == Op.Bsf ? (ulong)BitOperations.TrailingZeroCount(source) : (ulong)(63 - BitOperations.LeadingZeroCount(source)));
                WriteFlags(FlagZf, 0);
                return;
            case Op.Popcnt:
                WriteRegister(register, (ulong)BitOperations.PopCount(source));
                WriteFlags(ArithmeticFlags, source == 0 ? FlagZf : 0);
                return;
            case Op.Lzcnt:
            {
                var count = (ulong)(BitOperations.LeadingZeroCount(source) - (64 - bits));
                WriteRegister(register, count);
                WriteFlags(FlagCf | FlagZf, (source == 0 ? FlagCf : 0) | (count == 0 ? FlagZf : 0));
                return;
            }

            default:
            {
                var count = source == 0 ? (ulong)bits : (ulong)BitOperations.TrailingZeroCount(source);
                WriteRegister(register, count);
                WriteFlags(FlagCf | FlagZf, (source == 0 ? FlagCf : 0) | (count == 0 ? FlagZf : 0));
                return;
            }
        }
    }

    private void SignExtendAccumulator(ref DecodedInstruction d)
    {
        switch (d.Instruction.Code)
        {
            case Code.Cbw: WriteGpr(0, 2, (ulong)(sbyte)Gpr(0)); break;
            case Code.Cwde: WriteGpr(0, 4, (ulong)(short)Gpr(0)); break;
            default: Gpr(0) = (ulong)(int)Gpr(0); break;
        }
    }

    private void SignExtendIntoDx(ref DecodedInstruction d)
    {
        switch (d.Instruction.Code)
        {
            case Code.Cwd: WriteGpr(2, 2, (short)Gpr(0) < 0 ? 0xFFFFUL : 0UL); break;
            case Code.Cdq: WriteGpr(2, 4, (int)Gpr(0) < 0 ? 0xFFFF_FFFF : 0); break;
            default: Gpr(2) = (long)Gpr(0) < 0 ? ulong.MaxValue : 0; break;
        }
    }
}

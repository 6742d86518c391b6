using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The translating tier's path for MOVS/STOS/LODS, with or without REP: a whole instruction whose elements all lie in
/// one page of each operand, that page plain RAM the soft TLB already maps for the access, done through host pointers
/// at once; anything else (an empty TLB entry, a page crossing, a watched code page, MMIO, more than one chunk of
/// elements) is left to the interpreter's handler, which then runs the whole instruction from its first element.
/// </summary>
/// <remarks>
/// The result is the interpreter's, register for register and byte for byte: the path is taken only where the
/// interpreter would run the instruction to its end in one execution without a fault or a device access — at most
/// <see cref="RepChunk"/> elements (so neither its element chunk nor its bulk chunk ends it early), no element
/// straddling a page and no offset wrapping at the address size — and overlapping copies keep the element order where
/// it replicates (<see cref="CopyElements"/>, as the bulk path). It neither reads nor writes the flags and cannot fault,
/// so compiled code calls it with only the registers current in the vCPU.
/// </remarks>
public sealed unsafe partial class X86Cpu // unsafe: the elements are copied, filled or loaded through TLB host pointers.
{
    /// <summary>Runs MOVS/STOS/LODS <paramref name="d"/> whole when it fits the path above; false (nothing changed) otherwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryStringInPage(ref DecodedInstruction d)
    {
        var size = d.MemorySize == 0 ? d.Size : d.MemorySize;
        var addressSize = d.AddressSize;
        var repeated = d.Instruction.HasRepPrefix || d.Instruction.HasRepnePrefix;
        var count = repeated ? ReadCounter(addressSize) : 1;
        if (count == 0)
        {
            return true;
        }

        if (count > RepChunk)
        {
            return false;
        }

        var addressMask = MaskOf(addressSize * 8);
        var down = (_rflags & FlagDf) != 0;
        var bytes = count * (uint)size;
        var back = down ? bytes - (uint)size : 0;
        byte* target = null;
        byte* from = null;
        var rdi = ReadCounterLike(addressSize, 7);
        var rsi = ReadCounterLike(addressSize, 6);
        if (d.Op != Op.Lods)
        {
            var destination = ToLinear(rdi, (int)SegmentRegister.Es);
            if (ElementsInPage(destination, size, down) < count || Wraps(rdi, bytes, size, down, addressMask)
                || (target = WritableHostPointer(destination - back, (int)bytes)) == null)
            {
                return false;
            }
        }

        if (d.Op != Op.Stos)
        {
            var source = ToLinear(rsi, d.Segment);
            if (ElementsInPage(source, size, down) < count || Wraps(rsi, bytes, size, down, addressMask)
                || (from = ReadableHostPointer(source - back, (int)bytes)) == null)
            {
                return false;
            }
        }

        switch (d.Op)
        {
            case Op.Movs:
                CopyElements(from, target, (int)count, size, down);
                break;
            case Op.Stos:
                Fill(target, (int)count, size, Gpr(0));
                break;
            default:
            {
                // The last element loaded is the one REP LODS leaves in the accumulator.
                var last = from + (down ? 0 : bytes - (uint)size);
                WriteGpr(0, size, size switch
                {
                    1 => *last,
                    2 => Unsafe.ReadUnaligned<ushort>(last),
                    4 => Unsafe.ReadUnaligned<uint>(last),
                    _ => Unsafe.ReadUnaligned<ulong>(last),
                });
                break;
            }
        }

        if (d.Op != Op.Stos)
        {
            WriteGpr(6, addressSize, (down ? rsi - bytes : rsi + bytes) & addressMask);
        }

        if (d.Op != Op.Lods)
        {
            WriteGpr(7, addressSize, (down ? rdi - bytes : rdi + bytes) & addressMask);
        }

        if (repeated)
        {
            WriteCounter(addressSize, 0);
        }

        return true;
    }

    private static void Fill(byte* lowest, int elements, int size, ulong value)
    {
        switch (size)
        {
            case 1: new Span<byte>(lowest, elements).Fill((byte)value); break;
            case 2: new Span<ushort>(lowest, elements).Fill((ushort)value); break;
            case 4: new Span<uint>(lowest, elements).Fill((uint)value); break;
            default: new Span<ulong>(lowest, elements).Fill(value); break;
        }
    }
}

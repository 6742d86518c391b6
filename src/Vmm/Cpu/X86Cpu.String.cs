using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// MOVS/STOS/LODS/CMPS/SCAS/INS/OUTS with REP/REPE/REPNE. A repeated instruction runs at most
/// <see cref="RepChunk"/> iterations per execution and then leaves RIP on itself (as an interrupt window would),
/// so shootdown requests are still serviced at block boundaries during a long copy; each such chunk counts as an
/// instruction against the run's budget.
/// </summary>
public sealed partial class X86Cpu
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void StringOp(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var size = d.MemorySize == 0 ? d.Size : d.MemorySize;
        var addressSize = d.AddressSize;
        var addressMask = MaskOf(addressSize * 8);
        var step = (_rflags & FlagDf) != 0 ? -(long)size : size;
        var repeated = i.HasRepPrefix || i.HasRepnePrefix;
        var conditional = d.Op is Op.Cmps or Op.Scas;
        var sourceSegment = d.Segment;
        var iterations = 0;
        if (repeated && TryBulkString(ref d, size))
        {
            return;
        }

        while (true)
        {
            if (repeated && ReadCounter(addressSize) == 0)
            {
                return;
            }

            var rsi = ReadCounterLike(addressSize, 6);
            var rdi = ReadCounterLike(addressSize, 7);
            var source = ToLinear(rsi, sourceSegment);
            var destination = ToLinear(rdi, (int)SegmentRegister.Es);
            var advanceSource = false;
            var advanceDestination = false;
            switch (d.Op)
            {
                case Op.Movs:
                    WriteMemory(destination, size, ReadMemory(source, size));
                    advanceSource = advanceDestination = true;
                    break;
                case Op.Stos:
                    WriteMemory(destination, size, Gpr(0));
                    advanceDestination = true;
                    break;
                case Op.Lods:
                    WriteGpr(0, size, ReadMemory(source, size));
                    advanceSource = true;
                    break;
                case Op.Cmps:
                {
                    var a = ReadMemory(source, size);
                    var b = ReadMemory(destination, size);
                    SetFlags(FlagOp.Sub, size * 8, a, b, (a - b) & MaskOf(size * 8));
                    advanceSource = advanceDestination = true;
                    break;
                }

                case Op.Scas:
                {
                    var a = Gpr(0) & MaskOf(size * 8);
                    var b = ReadMemory(destination, size);
                    SetFlags(FlagOp.Sub, size * 8, a, b, (a - b) & MaskOf(size * 8));
                    advanceDestination = true;
                    break;
                }

                case Op.Ins:
                    WriteMemory(destination, size, PortIn((ushort)Gpr(2), size));
                    advanceDestination = true;
                    break;
                default:
                    PortOut((ushort)Gpr(2), size, ReadMemory(source, size));
                    advanceSource = true;
                    break;
            }

            if (advanceSource)
            {
                WriteGpr(6, addressSize, (ulong)((long)rsi + step) & addressMask);
            }

            if (advanceDestination)
            {
                WriteGpr(7, addressSize, (ulong)((long)rdi + step) & addressMask);
            }

            if (!repeated)
            {
                return;
            }

            WriteCounter(addressSize, (ReadCounter(addressSize) - 1) & addressMask);
            if (conditional && (i.HasRepPrefix ? !ZeroFlag() : ZeroFlag()))
            {
                return;
            }

            // Each unfinished chunk counts against the run's budget as one instruction: REP INS/OUTS, which no end of
            // RAM stops, may repeat 2^32 (2^64) times, and Run(budget) must still return within its budget.
            if (++iterations >= RepChunk && ReadCounter(addressSize) != 0)
            {
                _rip = _currentIp;
                _blockBroken = true;
                return;
            }
        }
    }
}

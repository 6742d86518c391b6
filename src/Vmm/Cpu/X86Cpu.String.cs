using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// MOVS/STOS/LODS/CMPS/SCAS/INS/OUTS with REP/REPE/REPNE. One execution of a repeated instruction does at most
/// <see cref="RepChunk"/> element iterations, <see cref="RepDeviceChunk"/> device accesses (port I/O or MMIO exits) or
/// <see cref="RepBulkChunkPages"/> bulk pages, and then leaves RIP on itself with RCX/RSI/RDI exact (as an interrupt
/// window would), so shootdown requests are still serviced at block boundaries during a long copy; each such chunk
/// counts as an instruction against the run's budget, so that Run(budget) returns within a time bounded by the
/// budget whatever the count (a REP MOVS into MMIO costs a device exit per element).
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
        var bulkPages = 0;
        var exitsBefore = _mmio + _portIo;
        var bulk = repeated && BulkStrings && d.Op is Op.Movs or Op.Stos;
        while (true)
        {
            if (repeated && ReadCounter(addressSize) == 0)
            {
                return;
            }

            if (bulk)
            {
                if (TryBulkPage(ref d, size, out var retryAfterElement))
                {
                    if (++bulkPages >= RepBulkChunkPages && ReadCounter(addressSize) != 0)
                    {
                        LeaveStringUnfinished();
                        return;
                    }

                    continue;
                }

                // An element straddling a page or an offset wrapping goes through the element path, then bulk resumes;
                // a fault, MMIO or an unmapped page leaves the rest of this chunk to the element path.
                bulk = retryAfterElement;
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
            // RAM stops, may repeat 2^32 (2^64) times, and Run(budget) must still return within its budget; a chunk of
            // device accesses is shorter, as each is a VM exit (about a microsecond against tens of nanoseconds).
            if ((++iterations >= RepChunk || _mmio + _portIo - exitsBefore >= RepDeviceChunk) && ReadCounter(addressSize) != 0)
            {
                LeaveStringUnfinished();
                return;
            }
        }
    }

    /// <summary>Ends this execution of an unfinished repeated instruction: it runs again as the next block, so shootdowns are served in between.</summary>
    private void LeaveStringUnfinished()
    {
        _rip = _currentIp;
        _blockBroken = true;
    }
}

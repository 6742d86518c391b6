using System.Runtime.CompilerServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The bulk path of REP MOVS and REP STOS with DF clear: up to one page per execution as one host copy or
/// fill through TLB host pointers (the bss clear of every guest is a REP STOSB of megabytes).
/// </summary>
/// <remarks>
/// Falls back to the element loop whenever the semantics could differ: a fault or MMIO on either page, an
/// element straddling a page, address-size wrap-around, or a forward-overlapping MOVS (which replicates a
/// pattern element by element, unlike a memmove). Stores to a page holding code are reported by the
/// translation itself (the write monitor), exactly as element stores are.
/// </remarks>
public sealed unsafe partial class X86Cpu // unsafe: the chunk is copied or filled through host pointers.
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryBulkString(ref DecodedInstruction d, int size)
    {
        if ((d.Op != Op.Movs && d.Op != Op.Stos) || !d.Instruction.HasRepPrefix || (_rflags & FlagDf) != 0)
        {
            return false;
        }

        var addressSize = d.AddressSize;
        var addressMask = MaskOf(addressSize * 8);
        var count = ReadCounter(addressSize);
        var rdi = ReadCounterLike(addressSize, 7);
        var rsi = ReadCounterLike(addressSize, 6);
        var destination = ToLinear(rdi, (int)SegmentRegister.Es);
        var source = ToLinear(rsi, d.Segment);
        var room = (Paging.PageSize - (destination & Paging.PageOffsetMask)) / (uint)size;
        if (d.Op == Op.Movs)
        {
            room = Math.Min(room, (Paging.PageSize - (source & Paging.PageOffsetMask)) / (uint)size);
        }

        var elements = Math.Min(count, room);
        var bytes = elements * (uint)size;
        if (elements == 0 || rdi + bytes - 1 > addressMask || (d.Op == Op.Movs && rsi + bytes - 1 > addressMask))
        {
            return false;
        }

        if (!_mmu.TryTranslate(new Gva(destination), GuestAccess.Write, out var target, out _))
        {
            return false;
        }

        if (d.Op == Op.Movs)
        {
            if (!_mmu.TryTranslate(new Gva(source), GuestAccess.Read, out var from, out _)
                || (target > from && target < from + bytes))
            {
                return false;
            }

            Buffer.MemoryCopy(from, target, bytes, bytes);
            WriteGpr(6, addressSize, rsi + bytes);
        }
        else
        {
            var value = Gpr(0);
            var length = (int)elements;
            switch (size)
            {
                case 1: new Span<byte>(target, length).Fill((byte)value); break;
                case 2: new Span<ushort>(target, length).Fill((ushort)value); break;
                case 4: new Span<uint>(target, length).Fill((uint)value); break;
                default: new Span<ulong>(target, length).Fill(value); break;
            }
        }

        WriteGpr(7, addressSize, rdi + bytes);
        WriteCounter(addressSize, count - elements);
        if (count != elements)
        {
            // Not done: run this instruction again as the next block, so shootdowns are served between pages.
            _rip = _currentIp;
            _blockBroken = true;
            _instructions--;
        }

        return true;
    }
}

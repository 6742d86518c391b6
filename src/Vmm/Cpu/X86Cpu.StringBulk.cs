using System.Runtime.CompilerServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The bulk path of REP MOVS and REP STOS (either direction): the elements that lie inside one page of the
/// destination (and of the source) as one host copy or fill through TLB host pointers (the bss clear of every guest
/// is a REP STOSB of megabytes; a fuzzed REP MOVS may run for 2^63 elements).
/// </summary>
/// <remarks>
/// The result is the element loop's, byte for byte: a page is done in bulk only when both operands translate to RAM
/// (no fault, no MMIO; the source is translated first, as the element loop reads before it writes, and again after
/// the destination, whose write translation may have broken a copy-on-write under it), no element straddles a page
/// and no offset wraps at the address size. Overlapping operands that the element order replicates (a destination
/// just above the source going up, just below it going down) are copied element by element in that order; every other
/// layout is a memmove. Stores to a page holding code are reported by the translation itself (the write monitor), as
/// element stores are. RCX, RSI and RDI advance by the elements done, so a fault or a chunk end after the page leaves
/// the state of the element loop at that element.
/// </remarks>
public sealed unsafe partial class X86Cpu // unsafe: the page is copied or filled through host pointers.
{
    /// <summary>
    /// False to run REP MOVS/STOS element by element only: the reference that the bulk path is tested against. True
    /// (the default) everywhere else.
    /// </summary>
    internal bool BulkStrings { get; set; } = true;

    /// <summary>
    /// Does the elements of a REP MOVS/STOS that stay within the current page of each operand in bulk; false when none
    /// could be (<paramref name="retryAfterElement"/> true when one element through the element path makes it
    /// possible again: a straddling element or a wrapping offset; false for a fault, MMIO or anything unmapped).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryBulkPage(ref DecodedInstruction d, int size, out bool retryAfterElement)
    {
        retryAfterElement = false;
        var addressSize = d.AddressSize;
        var addressMask = MaskOf(addressSize * 8);
        var down = (_rflags & FlagDf) != 0;
        var movs = d.Op == Op.Movs;
        var count = ReadCounter(addressSize);
        var rdi = ReadCounterLike(addressSize, 7);
        var rsi = ReadCounterLike(addressSize, 6);
        var destination = ToLinear(rdi, (int)SegmentRegister.Es);
        var source = ToLinear(rsi, d.Segment);
        var elements = Math.Min(count, ElementsInPage(destination, size, down));
        if (movs)
        {
            elements = Math.Min(elements, ElementsInPage(source, size, down));
        }

        var bytes = elements * (uint)size;
        if (elements == 0 || Wraps(rdi, bytes, size, down, addressMask) || (movs && Wraps(rsi, bytes, size, down, addressMask)))
        {
            retryAfterElement = true;
            return false;
        }

        // The first element's offset in the page, down to the lowest element's when going down.
        var back = down ? bytes - (uint)size : 0;
        if (movs)
        {
            if (!_mmu.TryTranslate(new Gva(source), GuestAccess.Read, out _, out _)
                || !_mmu.TryTranslate(new Gva(destination), GuestAccess.Write, out var target, out _)
                || !_mmu.TryTranslate(new Gva(source), GuestAccess.Read, out var from, out _))
            {
                return false;
            }

            CopyElements(from - back, target - back, (int)elements, size, down);
            WriteGpr(6, addressSize, (down ? rsi - bytes : rsi + bytes) & addressMask);
        }
        else
        {
            if (!_mmu.TryTranslate(new Gva(destination), GuestAccess.Write, out var target, out _))
            {
                return false;
            }

            var value = Gpr(0);
            var length = (int)elements;
            var lowest = target - back;
            switch (size)
            {
                case 1: new Span<byte>(lowest, length).Fill((byte)value); break;
                case 2: new Span<ushort>(lowest, length).Fill((ushort)value); break;
                case 4: new Span<uint>(lowest, length).Fill((uint)value); break;
                default: new Span<ulong>(lowest, length).Fill(value); break;
            }
        }

        WriteGpr(7, addressSize, (down ? rdi - bytes : rdi + bytes) & addressMask);
        WriteCounter(addressSize, count - elements);
        return true;
    }

    /// <summary>How many elements from <paramref name="linear"/> on (downwards when <paramref name="down"/>) lie wholly in its page.</summary>
    private static ulong ElementsInPage(ulong linear, int size, bool down)
    {
        var offset = linear & Paging.PageOffsetMask;
        if (offset + (uint)size > Paging.PageSize)
        {
            return 0;
        }

        return down ? (offset / (uint)size) + 1 : (Paging.PageSize - offset) / (uint)size;
    }

    /// <summary>True when elements from <paramref name="offset"/> over <paramref name="bytes"/> would wrap at the address size.</summary>
    private static bool Wraps(ulong offset, ulong bytes, int size, bool down, ulong addressMask) =>
        down ? offset < bytes - (uint)size || (uint)size - 1 > addressMask - offset : bytes - 1 > addressMask - offset;

    /// <summary>
    /// Copies <paramref name="elements"/> elements between the lowest ones at <paramref name="from"/> and <paramref name="to"/>
    /// as the element loop does: in its order when it replicates (the destination ahead of the source in the direction of
    /// travel and overlapping it), as a memmove otherwise (the same bytes).
    /// </summary>
    private static void CopyElements(byte* from, byte* to, int elements, int size, bool down)
    {
        var bytes = (long)elements * size;
        var replicates = down ? to < from && to + bytes > from : to > from && to < from + bytes;
        if (!replicates)
        {
            Buffer.MemoryCopy(from, to, bytes, bytes);
            return;
        }

        for (var k = 0; k < elements; k++)
        {
            var at = (long)(down ? elements - 1 - k : k) * size;
            switch (size)
            {
                case 1: to[at] = from[at]; break;
                case 2: Unsafe.WriteUnaligned(to + at, Unsafe.ReadUnaligned<ushort>(from + at)); break;
                case 4: Unsafe.WriteUnaligned(to + at, Unsafe.ReadUnaligned<uint>(from + at)); break;
                default: Unsafe.WriteUnaligned(to + at, Unsafe.ReadUnaligned<ulong>(from + at)); break;
            }
        }
    }
}

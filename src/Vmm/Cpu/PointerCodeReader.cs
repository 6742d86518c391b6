using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>Feeds Iced's decoder from guest code bytes in host memory (one page, reached through the TLB).</summary>
internal sealed unsafe class PointerCodeReader : CodeReader // unsafe: reads the guest page through its host pointer.
{
    private byte* _next;
    private int _remaining;

    /// <summary>Bytes not yet read.</summary>
    public int Remaining => _remaining;

    /// <summary>Points the reader at <paramref name="length"/> bytes at <paramref name="start"/>.</summary>
    public void Reset(byte* start, int length)
    {
        _next = start;
        _remaining = length;
    }

    /// <inheritdoc />
    public override int ReadByte()
    {
        if (_remaining <= 0)
        {
            return -1;
        }

        _remaining--;
        return *_next++;
    }
}

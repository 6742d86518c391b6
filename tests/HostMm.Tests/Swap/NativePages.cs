using System.Runtime.InteropServices;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// Pages of native memory for gathered swap transfers, like frames of the host arena: <see cref="Addresses"/> are
/// scattered (every other page of one block, in a seeded shuffled order), so no two neighbours are adjacent.
/// </summary>
internal sealed unsafe class NativePages : IDisposable
{
    private readonly byte* _block;

    public NativePages(int count, int seed = 3)
    {
        Count = count;
        _block = (byte*)NativeMemory.AlignedAlloc((nuint)(2 * count * SwapPages.Size), SwapPages.Size);
        new Span<byte>(_block, 2 * count * SwapPages.Size).Fill(0xEE);
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        Addresses = order.Select(i => (nint)(_block + (2 * i * SwapPages.Size))).ToArray();
    }

    public int Count { get; }

    public nint[] Addresses { get; }

    public Span<byte> Page(int index) => new((void*)Addresses[index], SwapPages.Size);

    /// <summary>Copies page i of <paramref name="buffer"/> into page i.</summary>
    public void Load(ReadOnlySpan<byte> buffer)
    {
        for (var i = 0; i < Count; i++)
        {
            buffer.Slice(i * SwapPages.Size, SwapPages.Size).CopyTo(Page(i));
        }
    }

    /// <summary>The pages, in order, as one buffer.</summary>
    public byte[] ToArray()
    {
        var buffer = new byte[Count * SwapPages.Size];
        for (var i = 0; i < Count; i++)
        {
            Page(i).CopyTo(buffer.AsSpan(i * SwapPages.Size, SwapPages.Size));
        }

        return buffer;
    }

    public void Dispose() => NativeMemory.AlignedFree(_block);
}

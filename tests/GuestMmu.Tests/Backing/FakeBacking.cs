using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Backing;

/// <summary>
/// A test double for <see cref="IGuestMemoryBacking"/> with no host MM behind it: <see cref="Frames"/> frames of native
/// memory mapped one to one from <see cref="Base"/> (hva page i is frame i), writable unless marked read-only. It
/// counts what the secondary MMU asks of it, so tests can check the fault path's reference discipline and the dirty
/// hand-back without a host.
/// </summary>
internal sealed unsafe class FakeBacking : IGuestMemoryBacking, IMm, IDisposable // unsafe: frames are native memory.
{
    private readonly byte* _frames;
    private readonly bool[] _readOnly;
    private long _references;

    public FakeBacking(int frames, Hva baseAddress)
    {
        Frames = frames;
        Base = baseAddress;
        _frames = (byte*)NativeMemory.AllocZeroed((nuint)frames * (nuint)Paging.PageSize);
        _readOnly = new bool[frames];
        Notifiers = new MmuNotifierChain(this);
    }

    public int Frames { get; }

    public Hva Base { get; }

    public int Id => 4242;

    public MmuNotifierChain Notifiers { get; }

    public IMm Mm => this;

    public ulong TotalFrames => (ulong)Frames;

    /// <summary>Short-term references taken by Resolve and not yet released.</summary>
    public long OutstandingReferences => Interlocked.Read(ref _references);

    public long Resolves { get; private set; }

    /// <summary>Frames handed back dirty, with how many times each was marked.</summary>
    public ConcurrentDictionary<ulong, int> Dirty { get; } = new();

    public void MakeReadOnly(int frame) => _readOnly[frame] = true;

    public Span<byte> FrameBytes(int frame) => new(_frames + ((long)frame * (long)Paging.PageSize), (int)Paging.PageSize);

    public BackingPage Resolve(Hva address, bool write)
    {
        Resolves++;
        var index = (long)((address.Value - Base.Value) >> Paging.PageShift);
        if (address < Base || index >= Frames)
        {
            return BackingPage.Failed(BackingStatus.Unmapped);
        }

        if (write && _readOnly[index])
        {
            return BackingPage.Failed(BackingStatus.Forbidden);
        }

        Interlocked.Increment(ref _references);
        return BackingPage.Resolved(new Pfn((ulong)index), writable: !_readOnly[index]);
    }

    public void Release(Pfn pfn)
    {
        if (Interlocked.Decrement(ref _references) < 0)
        {
            throw new InvalidOperationException($"{pfn} released without a reference");
        }
    }

    public void MarkDirty(Pfn pfn, ulong count)
    {
        for (ulong i = 0; i < count; i++)
        {
            Dirty.AddOrUpdate(pfn.Value + i, 1, (_, n) => n + 1);
        }
    }

    public nint FrameAddress(Pfn pfn) => (nint)(_frames + ((long)pfn.Value * (long)Paging.PageSize));

    public BackingFrameState QueryFrame(Pfn pfn) => pfn.Value < (ulong)Frames ? BackingFrameState.InUse : BackingFrameState.OutOfRange;

    public HostPte ReadPte(Hva address)
    {
        var index = (long)((address.Value - Base.Value) >> Paging.PageShift);
        return index < 0 || index >= Frames
            ? HostPte.None
            : HostPte.Present(new Pfn((ulong)index), _readOnly[index] ? 0 : HostPte.WritableBit);
    }

    public void Dispose() => NativeMemory.Free(_frames);
}

using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// One leaf slot of a <see cref="HostPageTable"/> with its PTE table's lock held, from
/// <see cref="HostPageTable.TryLock"/> (Linux's <c>pte_offset_map_lock</c>). Dispose it exactly once,
/// with <c>using</c>, to unlock; do not copy it (a copy would unlock again).
/// </summary>
public ref struct PteLock
{
    private readonly ref ulong _slot;
    private HostMemory? _memory;

    internal PteLock(ref ulong slot, HostMemory memory, Pfn tablePfn, Hva address)
    {
        _slot = ref slot;
        _memory = memory;
        TablePfn = tablePfn;
        Address = address;
    }

    /// <summary>The entry (a Volatile read and write of the slot, so lockless readers see whole values).</summary>
    /// <exception cref="InvalidOperationException">The lock was released or never taken.</exception>
    public readonly HostPte Value
    {
        get
        {
            CheckHeld();
            return new HostPte(Volatile.Read(ref _slot));
        }

        set
        {
            CheckHeld();
            Volatile.Write(ref _slot, value.Value);
        }
    }

    /// <summary>The PTE table's frame, whose lock is held.</summary>
    public readonly Pfn TablePfn { get; }

    /// <summary>The page-aligned address the slot maps.</summary>
    public readonly Hva Address { get; }

    /// <summary>True until <see cref="Dispose"/>.</summary>
    public readonly bool IsHeld => _memory is not null;

    /// <summary>Unlocks the PTE table; a second call on the same variable does nothing.</summary>
    public void Dispose()
    {
        var memory = _memory;
        if (memory is not null)
        {
            _memory = null;
            PageTableLock.Release(memory, TablePfn);
        }
    }

    private readonly void CheckHeld()
    {
        if (_memory is null)
        {
            throw new InvalidOperationException(
                $"the PTE lock for {Address} is not held: an entry may be read or written through a PteLock only between TryLock and Dispose");
        }
    }
}

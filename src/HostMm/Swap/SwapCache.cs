
namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The swap cache of one <see cref="SwapArea"/> (Linux's swap-cache xarray, or the 6.18 per-cluster swap tables): one
/// 64-bit entry per slot in native memory, holding nothing, the frame that caches the slot, or a shadow entry left by
/// the eviction of that frame (a <see cref="ShadowEntry"/> for the workingset refault test).
/// </summary>
/// <remarks>
/// <para>Encoding: 0 is empty; bit 0 set is a frame, <c>(pfn &lt;&lt; 1) | 1</c>; bit 0 clear and non-zero is a shadow.</para>
/// <para>Ownership: a frame is put into a slot's entry only by the owner of the slot's HAS_CACHE flag
/// (<see cref="SwapArea.TrySetCache"/> or <see cref="SwapArea.TryAllocate"/>), and taken out only by the holder of that
/// frame's page lock, so two writers never race on one entry; readers are lock-free (a frame found here must be
/// confirmed with a reference and its page lock, as Linux's <c>swap_cache_get_folio</c> does).</para>
/// </remarks>
internal sealed unsafe class SwapCache : IDisposable // unsafe: one native entry per slot.
{
    private readonly ulong* _entries;
    private long _pages;
    private int _disposed;

    public SwapCache(ulong slotCount)
    {
        SlotCount = slotCount;
        _entries = (ulong*)NativeMemory.AllocZeroed((nuint)slotCount, sizeof(ulong));
    }

    /// <summary>Slots covered (the area's <see cref="SwapArea.SlotCount"/>).</summary>
    public ulong SlotCount { get; }

    /// <summary>Frames in the cache now (Linux's <c>SwapCached</c>, in pages).</summary>
    public long Pages => Volatile.Read(ref _pages);

    /// <summary>The frame caching <paramref name="slot"/>, if any (a hint until confirmed under the frame's page lock).</summary>
    public bool TryGetFrame(ulong slot, out Pfn pfn)
    {
        var entry = Volatile.Read(ref _entries[Check(slot)]);
        pfn = new Pfn(entry >> 1);
        return (entry & 1) != 0;
    }

    /// <summary>The shadow entry of <paramref name="slot"/>, or 0 when it holds none.</summary>
    public ulong ShadowOf(ulong slot)
    {
        var entry = Volatile.Read(ref _entries[Check(slot)]);
        return (entry & 1) == 0 ? entry : 0;
    }

    /// <summary>Puts <paramref name="pfn"/> into <paramref name="slot"/>'s entry, returning the shadow it replaced (0 for none). The caller owns HAS_CACHE.</summary>
    /// <exception cref="InvalidOperationException">The entry already holds a frame (HAS_CACHE was not owned).</exception>
    public ulong Insert(ulong slot, Pfn pfn)
    {
        ref var entry = ref _entries[Check(slot)];
        var old = Volatile.Read(ref entry);
        if ((old & 1) != 0 || Interlocked.CompareExchange(ref entry, (pfn.Value << 1) | 1, old) != old)
        {
            throw new InvalidOperationException($"swap slot {slot} is already cached by {new Pfn(old >> 1)}: only the owner of the slot's HAS_CACHE may insert {pfn}");
        }

        Interlocked.Increment(ref _pages);
        return old;
    }

    /// <summary>Takes <paramref name="pfn"/> out of <paramref name="slot"/>'s entry, leaving <paramref name="shadow"/> (0 for nothing). The caller holds the frame's page lock.</summary>
    /// <exception cref="InvalidOperationException">The entry does not hold <paramref name="pfn"/>.</exception>
    public void Remove(ulong slot, Pfn pfn, ulong shadow)
    {
        if ((shadow & 1) != 0)
        {
            throw new ArgumentException($"0x{shadow:x} is not a shadow entry: bit 0 marks a frame", nameof(shadow));
        }

        ref var entry = ref _entries[Check(slot)];
        var expected = (pfn.Value << 1) | 1;
        if (Interlocked.CompareExchange(ref entry, shadow, expected) != expected)
        {
            throw new InvalidOperationException($"swap slot {slot} does not hold {pfn} (entry 0x{Volatile.Read(ref entry):x}): a frame leaves the swap cache only from its own slot");
        }

        Interlocked.Decrement(ref _pages);
    }

    /// <summary>
    /// Moves <paramref name="slot"/>'s entry from <paramref name="from"/> to <paramref name="to"/> (migration's
    /// <c>folio_migrate_mapping</c> for a swap-cache page). The caller holds both frames' page locks and has frozen
    /// <paramref name="from"/>'s references, so no lookup can take it meanwhile.
    /// </summary>
    /// <exception cref="InvalidOperationException">The entry does not hold <paramref name="from"/>.</exception>
    public void Replace(ulong slot, Pfn from, Pfn to)
    {
        ref var entry = ref _entries[Check(slot)];
        var expected = (from.Value << 1) | 1;
        if (Interlocked.CompareExchange(ref entry, (to.Value << 1) | 1, expected) != expected)
        {
            throw new InvalidOperationException($"swap slot {slot} does not hold {from} (entry 0x{Volatile.Read(ref entry):x}): only the cached frame can be replaced");
        }
    }

    /// <summary>Forgets <paramref name="slot"/>'s shadow entry, if it still holds one (the slot was freed).</summary>
    public void ClearShadow(ulong slot)
    {
        ref var entry = ref _entries[Check(slot)];
        var old = Volatile.Read(ref entry);
        if (old != 0 && (old & 1) == 0)
        {
            Interlocked.CompareExchange(ref entry, 0, old);
        }
    }

    /// <summary>Frees the entries.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            NativeMemory.Free(_entries);
        }
    }

    private ulong Check(ulong slot)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (slot >= SlotCount)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"swap slot {slot} is outside the cache's {SlotCount} slots");
        }

        return slot;
    }
}

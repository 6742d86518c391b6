namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// Native memory for EPT tables: 4 KiB-aligned blocks of 512 <c>ulong</c>, one per table, carved from
/// 2 MiB-aligned chunks (<see cref="NativeMemory.AlignedAlloc"/>) that are allocated on demand and never
/// returned before <see cref="Dispose"/>. Each chunk ends with one <see cref="LeafTableCounts"/> per table
/// (4 KiB after the 2 MiB of tables), so a table's counts are found from its address alone. A table is named by a <see cref="uint"/> index (chunk × 512 + block), the
/// value non-leaf <see cref="Spte"/>s carry in bits 12–51. Freed indices go on a free list and are handed
/// out again, zeroed.
/// </summary>
/// <remarks>
/// <para><b>Locking.</b> <see cref="Allocate"/> and <see cref="Free"/> take <c>_lock</c> (a leaf lock:
/// nothing else is taken under it, and it may be taken under the guest MMU lock). Uncontended it costs
/// a few tens of nanoseconds, which is small beside zeroing the 4 KiB table.</para>
/// <para><b>Lockless readers.</b> <see cref="TablePointer"/>, <see cref="Table"/> and <see cref="Entry"/>
/// take no lock: the chunk directory is replaced (copied, then published with a volatile write) only by
/// growth, and old directories stay valid because chunks are never freed before dispose. Whether a
/// table index is still <i>allocated</i> is the caller's business (see <see cref="EptPageTable"/>'s
/// retire/reclaim rule): reading a freed table reads someone else's entries.</para>
/// </remarks>
public sealed unsafe class EptArena : IDisposable // unsafe: tables are native memory addressed by pointer.
{
    /// <summary>Tables per native chunk (2 MiB).</summary>
    public const int TablesPerChunk = 512;

    /// <summary>Bytes of tables per native chunk (2 MiB; the chunk also holds the tables' counts).</summary>
    public const int ChunkBytes = TablesPerChunk * EptGeometry.TableBytes;

    /// <summary>Native bytes one table costs: its 512 entries plus its <see cref="LeafTableCounts"/>.</summary>
    public const int BytesPerTable = EptGeometry.TableBytes + 8; // 8 = sizeof(LeafTableCounts)

    private const int ChunkShift = 9;

    // Tables first, then the counts block: the allocation is 2 MiB-aligned, so masking a table pointer
    // gives its chunk base.
    private const int ChunkAllocationBytes = TablesPerChunk * BytesPerTable;

    private readonly Lock _lock = new();

    // Chunk directory: entry c holds the base of tables [c*512, c*512+512). Grown under _lock, read lock-free.
    private nint[] _chunks = new nint[4];
    private int _chunkCount;

    // Never-used indices start at _bump (all below are in a chunk). Guarded by _lock.
    private uint _bump;

    // Stack of freed indices. Guarded by _lock.
    private uint[] _free = new uint[64];
    private int _freeCount;

    // One bit per index: allocated. Guarded by _lock; catches double frees and frees of unknown indices.
    private ulong[] _allocated = new ulong[TablesPerChunk / 64 * 4];

    private long _tablesInUse;
    private long _allocations;
    private long _frees;
    private bool _disposed;

    /// <summary>Tables currently allocated.</summary>
    public long TablesInUse => Volatile.Read(ref _tablesInUse);

    /// <summary>Native bytes held in chunks (allocated or free tables alike, counts included).</summary>
    public long BytesReserved => (long)Volatile.Read(ref _chunkCount) * ChunkAllocationBytes;

    /// <summary>Tables the reserved chunks can hold.</summary>
    public long TableCapacity => (long)Volatile.Read(ref _chunkCount) * TablesPerChunk;

    /// <summary>Tables handed out since creation.</summary>
    public long Allocations => Volatile.Read(ref _allocations);

    /// <summary>Tables returned since creation.</summary>
    public long Frees => Volatile.Read(ref _frees);

    /// <summary>Hands out a zeroed table, reusing a freed one when there is one, else carving a new chunk block.</summary>
    /// <exception cref="ObjectDisposedException">The arena was disposed.</exception>
    /// <exception cref="OutOfMemoryException">No native chunk could be allocated, or 2^32 tables exist.</exception>
    public uint Allocate()
    {
        uint index;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_freeCount > 0)
            {
                index = _free[--_freeCount];
            }
            else
            {
                if (_bump == (uint)_chunkCount * TablesPerChunk)
                {
                    AddChunk();
                }

                index = _bump++;
            }

            _allocated[index >> 6] |= 1UL << (int)(index & 63);
            _tablesInUse++;
            _allocations++;
        }

        // Zero outside the lock: nobody else can reach the index until the caller publishes it.
        var table = TablePointer(index);
        new Span<ulong>(table, EptGeometry.EntriesPerTable).Clear();
        *CountsOf(table) = default;
        return index;
    }

    /// <summary>Returns table <paramref name="index"/> to the free list. The caller guarantees no reader can still reach it.</summary>
    /// <exception cref="InvalidOperationException"><paramref name="index"/> is not an allocated table (double free or never allocated).</exception>
    /// <exception cref="ObjectDisposedException">The arena was disposed.</exception>
    public void Free(uint index)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (index >= _bump || (_allocated[index >> 6] & (1UL << (int)(index & 63))) == 0)
            {
                throw new InvalidOperationException(
                    $"EPT table {index} is not allocated: a table may be freed once, and only after Allocate returned it");
            }

            _allocated[index >> 6] &= ~(1UL << (int)(index & 63));
            if (_freeCount == _free.Length)
            {
                Array.Resize(ref _free, _free.Length * 2);
            }

            _free[_freeCount++] = index;
            _tablesInUse--;
            _frees++;
        }
    }

    /// <summary>The 512 entries of table <paramref name="index"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> lies beyond every reserved chunk.</exception>
    public Span<ulong> Table(uint index) => new(CheckedPointer(index), EptGeometry.EntriesPerTable);

    /// <summary>Entry <paramref name="slot"/> of table <paramref name="index"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> lies beyond every reserved chunk, or <paramref name="slot"/> is not 0 to 511.</exception>
    public ref ulong Entry(uint index, int slot)
    {
        if ((uint)slot >= EptGeometry.EntriesPerTable)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"table slot {slot} is out of range: slots are 0 to {EptGeometry.EntriesPerTable - 1}");
        }

        return ref CheckedPointer(index)[slot];
    }

    /// <summary>Frees every chunk. Tables must no longer be used by anyone.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            for (var c = 0; c < _chunkCount; c++)
            {
                NativeMemory.AlignedFree((void*)_chunks[c]);
                _chunks[c] = 0;
            }

            _tablesInUse = 0;
        }
    }

    /// <summary>The base of table <paramref name="index"/>, without checks (hot walk path; the index came from a live entry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong* TablePointer(uint index)
    {
        var chunks = Volatile.Read(ref _chunks);
        return (ulong*)chunks[(int)(index >> ChunkShift)] + ((index & (TablesPerChunk - 1)) * (uint)EptGeometry.EntriesPerTable);
    }

    /// <summary>The counts kept for the table at <paramref name="table"/> (any table pointer this arena handed out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static LeafTableCounts* CountsOf(ulong* table)
    {
        var chunk = (nint)table & ~(nint)(ChunkBytes - 1);
        var slot = ((nint)table - chunk) / EptGeometry.TableBytes;
        return (LeafTableCounts*)(chunk + ChunkBytes) + slot;
    }

    private ulong* CheckedPointer(uint index)
    {
        if (index >= (ulong)Volatile.Read(ref _chunkCount) * TablesPerChunk)
        {
            throw new ArgumentOutOfRangeException(
                nameof(index), index, $"EPT table {index} does not exist: the arena holds tables 0 to {TableCapacity - 1}");
        }

        return TablePointer(index);
    }

    // Called under _lock.
    private void AddChunk()
    {
        if (_chunkCount == (int)(uint.MaxValue >> ChunkShift) + 1)
        {
            throw new OutOfMemoryException($"the EPT arena holds {(ulong)_chunkCount * TablesPerChunk} tables, the most a 32-bit table index can name");
        }

        var chunk = (nint)NativeMemory.AlignedAlloc(ChunkAllocationBytes, ChunkBytes);
        if (_chunkCount == _chunks.Length)
        {
            var grown = new nint[_chunks.Length * 2];
            Array.Copy(_chunks, grown, _chunkCount);
            grown[_chunkCount] = chunk;

            // Publish the filled directory before any index in the new chunk can be handed out.
            Volatile.Write(ref _chunks, grown);
        }
        else
        {
            Volatile.Write(ref _chunks[_chunkCount], chunk);
        }

        var bitmapWords = (_chunkCount + 1) * (TablesPerChunk / 64);
        if (bitmapWords > _allocated.Length)
        {
            Array.Resize(ref _allocated, Math.Max(bitmapWords, _allocated.Length * 2));
        }

        Volatile.Write(ref _chunkCount, _chunkCount + 1);
    }
}

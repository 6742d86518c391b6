namespace Hypervisor.HostMm.Swap;

/// <summary>
/// zram's allocator in the style of zsmalloc: objects of 32 to 4096 bytes in 128 size classes 32 bytes apart, each
/// class carving 64 KiB native chunks into equal objects. A free object holds the index of the next free object in
/// its chunk (an intrusive free list); a chunk whose last object is freed goes back to the OS, so memory follows
/// what is stored. No managed object per stored page: an object is named by its address plus a packed
/// (class, chunk) handle that the caller keeps beside it.
/// </summary>
/// <remarks>
/// Lock: one per size class, a leaf (nothing is called while it is held). No compaction: a stored object never
/// moves, so a reader that owns the object (the zram slot lock) reads it without the class lock.
/// </remarks>
internal sealed unsafe class ZsPool : IDisposable
{
    /// <summary>Distance between size classes, in bytes.</summary>
    public const int ClassStep = 32;

    /// <summary>Bytes of one chunk (16 pages).</summary>
    public const int ChunkBytes = 64 * 1024;

    private const int ClassCount = (int)Paging.PageSize / ClassStep;
    private const int ChunkBits = 24;
    private const uint ChunkMask = (1u << ChunkBits) - 1;
    private const int None = -1;

    private readonly SizeClass[] _classes = new SizeClass[ClassCount];
    private long _memoryUsed;
    private bool _disposed;

    public ZsPool()
    {
        for (var i = 0; i < ClassCount; i++)
        {
            _classes[i] = new SizeClass((i + 1) * ClassStep);
        }
    }

    /// <summary>Bytes of native memory held in chunks now.</summary>
    public long MemoryUsed => Volatile.Read(ref _memoryUsed);

    /// <summary>The size class an object of <paramref name="length"/> bytes is stored in.</summary>
    public static int ClassOf(int length) => (length + ClassStep - 1) / ClassStep - 1;

    /// <summary>Allocates an object of at least <paramref name="length"/> (1 to 4096) bytes; returns its address and its handle.</summary>
    public byte* Allocate(int length, out uint handle)
    {
        var sizeClass = _classes[ClassOf(length)];
        lock (sizeClass.Lock)
        {
            var chunkIndex = sizeClass.NonFullHead;
            if (chunkIndex == None)
            {
                chunkIndex = sizeClass.NewChunk();
                Interlocked.Add(ref _memoryUsed, ChunkBytes);
            }

            ref var chunk = ref sizeClass.Chunks[chunkIndex];
            int objectIndex;
            if (chunk.FreeHead != None)
            {
                objectIndex = chunk.FreeHead;
                chunk.FreeHead = *(int*)(chunk.Base + ((nint)objectIndex * sizeClass.ObjectSize));
            }
            else
            {
                objectIndex = chunk.Bump++;
            }

            chunk.InUse++;
            if (chunk.InUse == sizeClass.ObjectsPerChunk)
            {
                sizeClass.Unlink(chunkIndex);
            }

            handle = ((uint)ClassOf(length) << ChunkBits) | (uint)chunkIndex;
            return chunk.Base + ((nint)objectIndex * sizeClass.ObjectSize);
        }
    }

    /// <summary>Frees the object at <paramref name="address"/> that <see cref="Allocate"/> returned with <paramref name="handle"/>.</summary>
    public void Free(byte* address, uint handle)
    {
        var sizeClass = _classes[handle >> ChunkBits];
        var chunkIndex = (int)(handle & ChunkMask);
        lock (sizeClass.Lock)
        {
            ref var chunk = ref sizeClass.Chunks[chunkIndex];
            var objectIndex = (int)((address - chunk.Base) / sizeClass.ObjectSize);
            var wasFull = chunk.InUse == sizeClass.ObjectsPerChunk;
            chunk.InUse--;
            if (chunk.InUse == 0)
            {
                if (!wasFull)
                {
                    sizeClass.Unlink(chunkIndex);
                }

                sizeClass.ReleaseChunk(chunkIndex);
                Interlocked.Add(ref _memoryUsed, -ChunkBytes);
                return;
            }

            *(int*)address = chunk.FreeHead;
            chunk.FreeHead = objectIndex;
            if (wasFull)
            {
                sizeClass.PushNonFull(chunkIndex);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var sizeClass in _classes)
        {
            sizeClass.FreeAll();
        }

        _memoryUsed = 0;
    }

    /// <summary>One chunk: its memory, how many objects are handed out, its free list, its links on the non-full list.</summary>
    private struct Chunk
    {
        public byte* Base;
        public int InUse;
        public int FreeHead;
        public int Bump;
        public int Prev;
        public int Next;
    }

    /// <summary>One size class: its chunk table (indices reused through a free-index stack) and its list of chunks with room.</summary>
    private sealed class SizeClass(int objectSize)
    {
        public readonly Lock Lock = new();
        public readonly int ObjectSize = objectSize;
        public readonly int ObjectsPerChunk = ChunkBytes / objectSize;
        public Chunk[] Chunks = new Chunk[4];
        public int NonFullHead = None;
        private int _count;
        private int[] _freeIndices = new int[4];
        private int _freeCount;

        public int NewChunk()
        {
            int index;
            if (_freeCount > 0)
            {
                index = _freeIndices[--_freeCount];
            }
            else
            {
                if (_count == Chunks.Length)
                {
                    if (_count == (int)ChunkMask)
                    {
                        throw new OutOfMemoryException($"zram size class of {ObjectSize} bytes is out of chunk handles ({ChunkMask})");
                    }

                    Array.Resize(ref Chunks, Math.Min(Chunks.Length * 2, (int)ChunkMask));
                }

                index = _count++;
            }

            Chunks[index] = new Chunk
            {
                Base = (byte*)NativeMemory.Alloc(ChunkBytes),
                FreeHead = None,
                Prev = None,
                Next = None,
            };
            PushNonFull(index);
            return index;
        }

        public void ReleaseChunk(int index)
        {
            NativeMemory.Free(Chunks[index].Base);
            Chunks[index] = default;
            if (_freeCount == _freeIndices.Length)
            {
                Array.Resize(ref _freeIndices, _freeIndices.Length * 2);
            }

            _freeIndices[_freeCount++] = index;
        }

        public void PushNonFull(int index)
        {
            ref var chunk = ref Chunks[index];
            chunk.Prev = None;
            chunk.Next = NonFullHead;
            if (NonFullHead != None)
            {
                Chunks[NonFullHead].Prev = index;
            }

            NonFullHead = index;
        }

        public void Unlink(int index)
        {
            ref var chunk = ref Chunks[index];
            if (chunk.Prev != None)
            {
                Chunks[chunk.Prev].Next = chunk.Next;
            }
            else
            {
                NonFullHead = chunk.Next;
            }

            if (chunk.Next != None)
            {
                Chunks[chunk.Next].Prev = chunk.Prev;
            }

            chunk.Prev = None;
            chunk.Next = None;
        }

        public void FreeAll()
        {
            for (var i = 0; i < _count; i++)
            {
                if (Chunks[i].Base != null)
                {
                    NativeMemory.Free(Chunks[i].Base);
                    Chunks[i].Base = null;
                }
            }
        }
    }
}

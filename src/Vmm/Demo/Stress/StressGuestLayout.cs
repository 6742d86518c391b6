using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// Where the stress guest (guests/stress.c) puts things in guest-physical memory, computed the way the guest does: its
/// control page at the first MiB boundary after the image, then one u32 discard counter per data page (written by the
/// host), then the guest's snapshot of them; the data area at the next 2 MiB boundary, <see cref="PagesPerVcpu"/> pages
/// per vCPU, vCPU k's region k-th. The data area is cut into 2 MiB chunks, each its own memslot (so one can be remapped).
/// With the DMA engine, one more chunk right after the data area holds its buffers (<see cref="DmaChunks"/>): the guest
/// never touches it, the host's mechanisms strike it as they strike the data area (<see cref="HostChunks"/>).
/// </summary>
public sealed record StressGuestLayout
{
    /// <summary>Bytes per chunk of the data area: one huge page.</summary>
    public const ulong ChunkBytes = Paging.LargePageSize;

    /// <summary>Pages per chunk.</summary>
    public const int ChunkPages = (int)(ChunkBytes / Paging.PageSize);

    /// <summary>The guest's control page's magic (version 1).</summary>
    public const ulong ControlMagic = 0x5354524553530001UL;

    /// <summary>Offset of the stop word in the control page.</summary>
    public const ulong StopOffset = 8;

    /// <summary>The control page's gpa.</summary>
    public required ulong ControlGpa { get; init; }

    /// <summary>The discard counters' gpa (one u32 per data page, vCPU 0's first page first).</summary>
    public required ulong DiscardGpa { get; init; }

    /// <summary>The data area's gpa (2 MiB-aligned).</summary>
    public required ulong DataGpa { get; init; }

    /// <summary>vCPUs, each with its own region.</summary>
    public required int Vcpus { get; init; }

    /// <summary>Pages of each vCPU's region (a whole number of chunks).</summary>
    public required int PagesPerVcpu { get; init; }

    /// <summary>Chunks of the DMA engine's buffers after the data area: 1 when the run drives the engine, else 0.</summary>
    public int DmaChunks { get; init; }

    /// <summary>Pages of the data area.</summary>
    public long DataPages => (long)PagesPerVcpu * Vcpus;

    /// <summary>2 MiB chunks of the data area.</summary>
    public int Chunks => (int)(DataPages / ChunkPages);

    /// <summary>One past the data area's last byte.</summary>
    public ulong DataEndGpa => DataGpa + ((ulong)DataPages * Paging.PageSize);

    /// <summary>Chunks the host's mechanisms strike: the data area's, then the DMA buffers' (chunk numbers from <see cref="Chunks"/> on).</summary>
    public int HostChunks => Chunks + DmaChunks;

    /// <summary>The gpa of the DMA buffers' chunk (meaningful when <see cref="DmaChunks"/> is 1).</summary>
    public ulong DmaGpa => DataEndGpa;

    /// <summary>One past the last byte the host's mechanisms strike (the DMA buffers' end, or the data area's).</summary>
    public ulong HostEndGpa => DataEndGpa + ((ulong)DmaChunks * ChunkBytes);

    /// <summary>Whether <paramref name="chunk"/> holds the DMA buffers rather than guest data.</summary>
    public bool IsDmaChunk(int chunk) => chunk >= Chunks;

    /// <summary>The gpa of chunk <paramref name="chunk"/> (of the data area, or from <see cref="Chunks"/> on the DMA buffers').</summary>
    public ulong ChunkGpa(int chunk) => DataGpa + ((ulong)chunk * ChunkBytes);

    /// <summary>The gpa of data page <paramref name="page"/>'s discard counter.</summary>
    public ulong DiscardCounterGpa(long page) => DiscardGpa + ((ulong)page * 4);

    /// <summary>The layout the guest computes for an image ending at <paramref name="imageEndGpa"/>.</summary>
    /// <param name="imageEndGpa">One past the image's last byte (bss included).</param>
    /// <param name="vcpus">vCPUs.</param>
    /// <param name="bytesPerVcpu">Each vCPU's region (a multiple of 2 MiB).</param>
    public static StressGuestLayout For(ulong imageEndGpa, int vcpus, ulong bytesPerVcpu)
    {
        const ulong mib = 1UL << 20;
        var pagesPerVcpu = (int)(bytesPerVcpu / Paging.PageSize);
        var pages = (ulong)pagesPerVcpu * (ulong)vcpus;
        var control = (imageEndGpa + mib - 1) & ~(mib - 1);
        var discard = control + Paging.PageSize;
        var snapshots = discard + (pages * 4);
        var data = (snapshots + (pages * 4) + ChunkBytes - 1) & ~(ChunkBytes - 1);
        return new StressGuestLayout { ControlGpa = control, DiscardGpa = discard, DataGpa = data, Vcpus = vcpus, PagesPerVcpu = pagesPerVcpu };
    }
}

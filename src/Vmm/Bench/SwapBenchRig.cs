using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Vmm.Bench;

/// <summary>
/// What the swap-path benchmarks share: a host with room for four copies of the region (at least 64 MiB) and a swap file
/// of the same size, a VM whose RAM is the region, and a plain temporary file of the same pages (one page of header room) for the
/// same-run baseline rows, deleted when the rig is disposed. With direct I/O both the swap file and the plain file
/// bypass the OS page cache (<c>O_DIRECT</c>), so both sides pay the disk. Shared by <c>hv bench swap-out|swap-in</c>
/// (<see cref="QuickBench"/>) and the swap benchmarks in <c>bench/</c>.
/// </summary>
public sealed unsafe class SwapBenchRig : IDisposable
{
    /// <summary>The smallest host (and swap file) the rig builds: host RAM's lower bound.</summary>
    private const ulong MinimumHostBytes = 64UL << 20;

    private readonly string _plainPath;

    // Page-aligned native buffers of Bytes each (direct I/O needs aligned memory), allocated on first use; null until then.
    private byte* _data;
    private byte* _readBack;

    /// <summary>
    /// Builds the rig for <paramref name="bytes"/> of guest RAM; <paramref name="name"/> names the plain file;
    /// <paramref name="directIo"/> opens the swap file and the plain file with <c>O_DIRECT</c>.
    /// </summary>
    /// <exception cref="SwapConfigurationException">Direct I/O was asked for and the temp folder's file system or the OS cannot do it.</exception>
    public SwapBenchRig(ulong bytes, string name, ReclaimOptions? reclaim = null, bool directIo = false)
    {
        var room = Math.Max(4 * bytes, MinimumHostBytes);
        Host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = room },
            Swap = new SwapOptions { Kind = SwapDeviceKind.File, SizeBytes = room, DirectIo = directIo },
            Reclaim = reclaim ?? new ReclaimOptions(),
        });
        Vm = new BenchVm(Host, bytes);
        Bytes = bytes;
        DirectIo = directIo;
        _plainPath = Path.Combine(Path.GetTempPath(), $"hv-{name}-plain-{Guid.NewGuid():N}");
        var length = (long)bytes + (long)Paging.PageSize;
        Plain = File.OpenHandle(_plainPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose, length);
        RandomAccess.SetLength(Plain, length);
        if (directIo && !LinuxDirectIo.TryEnable(Plain, out var reason))
        {
            Dispose();
            throw new SwapConfigurationException(SwapRule.DirectIoUnsupported, $"the plain file '{_plainPath}' cannot use direct I/O: {reason}", nameof(directIo));
        }
    }

    /// <summary>True when the swap file and the plain file both bypass the OS page cache.</summary>
    public bool DirectIo { get; }

    /// <summary>A page-aligned buffer of <see cref="Bytes"/> owned by the rig (zero at first): the data the operations write, as direct I/O wants it.</summary>
    public Span<byte> Data => new(_data is null ? _data = Allocate() : _data, checked((int)Bytes));

    /// <summary>A second page-aligned buffer of <see cref="Bytes"/> owned by the rig: where the plain reads land.</summary>
    public Span<byte> ReadBack => new(_readBack is null ? _readBack = Allocate() : _readBack, checked((int)Bytes));

    /// <summary>The host whose reclaim swaps the VM's RAM.</summary>
    public Host Host { get; }

    /// <summary>The VM (its process, RAM region and EPT MMU).</summary>
    public BenchVm Vm { get; }

    /// <summary>The plain file the baseline rows read and write.</summary>
    public SafeFileHandle Plain { get; }

    /// <summary>Bytes of guest RAM (the region every operation covers).</summary>
    public ulong Bytes { get; }

    /// <summary>4 KiB pages of guest RAM.</summary>
    public int Pages => checked((int)(Bytes >> Paging.PageShift));

    /// <summary>
    /// Writes <paramref name="data"/> (the region's size) over the region, so every page is resident and dirty (a page left
    /// on swap by the last round comes back, and its swap-cache copy is dropped); <paramref name="throughEpt"/> also maps
    /// every page with a writable spte, so unmapping it zaps.
    /// </summary>
    public void MakeResidentAndDirty(ReadOnlySpan<byte> data, bool throughEpt)
    {
        Vm.Mm.Write(Vm.Ram, data);
        if (throughEpt)
        {
            for (ulong page = 0; page < (ulong)Pages; page++)
            {
                Vm.Mmu.HandleEptViolation(new Gfn(page).ToGpa(), EptAccess.Write);
            }
        }
    }

    /// <summary><c>madvise(MADV_PAGEOUT)</c> of the region, which must write every page to swap in runs (at least 8 pages a device call on average).</summary>
    /// <exception cref="InvalidOperationException">It did not (the measurement would be of something else).</exception>
    public void PageOut()
    {
        var before = Host.Reclaim.Stats.Pswpout;
        var callsBefore = Host.Reclaim.Area!.Device.GetStats().WriteCalls;
        Vm.Mm.Madvise(Vm.Ram, Bytes, Advice.PageOut);
        var written = Host.Reclaim.Stats.Pswpout - before;
        var calls = Host.Reclaim.Area.Device.GetStats().WriteCalls - callsBefore;
        if (written != Pages || calls > Math.Max(1, Pages / 8))
        {
            throw new InvalidOperationException($"MADV_PAGEOUT wrote {written} of {Pages} pages to swap in {calls} device calls");
        }
    }

    /// <summary>
    /// A sequential read fault on every page of the paged-out region, through the EPT fault path and get-user-pages
    /// (<paramref name="throughEpt"/>) or as the host's own faults; returns the host faults that read the device (host-only; 0 through the EPT).
    /// </summary>
    /// <exception cref="InvalidOperationException">A fault did not swap its page in.</exception>
    public long FaultIn(bool throughEpt)
    {
        long major = 0;
        for (ulong page = 0; page < (ulong)Pages; page++)
        {
            if (throughEpt)
            {
                var result = Vm.Mmu.HandleEptViolation(new Gfn(page).ToGpa(), EptAccess.Read);
                if (result.Outcome != EptFaultOutcome.Installed)
                {
                    throw new InvalidOperationException($"EPT fault on gfn {page}: {result.Outcome} {result.Detail}");
                }
            }
            else
            {
                var result = Vm.Mm.HandleFault(Vm.Ram + (page * Paging.PageSize), FaultAccess.Read);
                if (result is not (FaultResult.SwapIn or FaultResult.SwapCacheHit))
                {
                    throw new InvalidOperationException($"fault on page {page}: {result}");
                }

                major += result == FaultResult.SwapIn ? 1 : 0;
            }
        }

        return major;
    }

    /// <summary>The baseline of swap-out: <paramref name="data"/> written to the plain file in calls of <paramref name="pagesPerCall"/> pages.</summary>
    /// <exception cref="ArgumentException">With direct I/O, <paramref name="data"/> is not page-aligned (use <see cref="Data"/>).</exception>
    public void PlainWrite(ReadOnlySpan<byte> data, int pagesPerCall)
    {
        CheckAligned(data, nameof(data));
        var run = pagesPerCall * (int)Paging.PageSize;
        for (var i = 0; i < Pages; i += pagesPerCall)
        {
            RandomAccess.Write(Plain, data.Slice(i * (int)Paging.PageSize, run), (1L + i) * (long)Paging.PageSize);
        }
    }

    /// <summary>The baseline of swap-in: the plain file read into <paramref name="buffer"/> in calls of <paramref name="pagesPerCall"/> pages.</summary>
    /// <exception cref="ArgumentException">With direct I/O, <paramref name="buffer"/> is not page-aligned (use <see cref="ReadBack"/>).</exception>
    public void PlainRead(Span<byte> buffer, int pagesPerCall)
    {
        CheckAligned(buffer, nameof(buffer));
        var run = pagesPerCall * (int)Paging.PageSize;
        for (var i = 0; i < Pages; i += pagesPerCall)
        {
            RandomAccess.Read(Plain, buffer.Slice(i * (int)Paging.PageSize, run), (1L + i) * (long)Paging.PageSize);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Vm.Dispose();
        Host.Dispose();
        Plain.Dispose();
        File.Delete(_plainPath);
        NativeMemory.AlignedFree(_data);
        NativeMemory.AlignedFree(_readBack);
        _data = null;
        _readBack = null;
    }

    private byte* Allocate()
    {
        var buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, (nuint)Paging.PageSize);
        new Span<byte>(buffer, checked((int)Bytes)).Clear();
        return buffer;
    }

    private void CheckAligned(ReadOnlySpan<byte> buffer, string paramName)
    {
        fixed (byte* start = buffer)
        {
            if (DirectIo && ((nuint)start & (nuint)(Paging.PageSize - 1)) != 0)
            {
                throw new ArgumentException("with direct I/O the plain file's buffer must be page-aligned: use the rig's Data or ReadBack", paramName);
            }
        }
    }
}

using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Vmm.Bench;

/// <summary>
/// What the swap-path benchmarks share: a host with room for four copies of the region (at least 64 MiB) and a swap file
/// of the same size, a VM whose RAM is the region, and a plain temporary file of the same pages (one page of header room) for the
/// same-run baseline rows, deleted when the rig is disposed. Shared by <c>hv bench swap-out|swap-in</c>
/// (<see cref="QuickBench"/>) and the swap benchmarks in <c>bench/</c>.
/// </summary>
public sealed class SwapBenchRig : IDisposable
{
    /// <summary>The smallest host (and swap file) the rig builds: host RAM's lower bound.</summary>
    private const ulong MinimumHostBytes = 64UL << 20;

    private readonly string _plainPath;

    /// <summary>Builds the rig for <paramref name="bytes"/> of guest RAM; <paramref name="name"/> names the plain file.</summary>
    public SwapBenchRig(ulong bytes, string name, ReclaimOptions? reclaim = null)
    {
        var room = Math.Max(4 * bytes, MinimumHostBytes);
        Host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = room },
            Swap = new SwapOptions { Kind = SwapDeviceKind.File, SizeBytes = room },
            Reclaim = reclaim ?? new ReclaimOptions(),
        });
        Vm = new BenchVm(Host, bytes);
        _plainPath = Path.Combine(Path.GetTempPath(), $"hv-{name}-plain-{Guid.NewGuid():N}");
        var length = (long)bytes + (long)Paging.PageSize;
        Plain = File.OpenHandle(_plainPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose, length);
        RandomAccess.SetLength(Plain, length);
    }

    /// <summary>The host whose reclaim swaps the VM's RAM.</summary>
    public Host Host { get; }

    /// <summary>The VM (its process, RAM region and EPT MMU).</summary>
    public BenchVm Vm { get; }

    /// <summary>The plain file the baseline rows read and write.</summary>
    public SafeFileHandle Plain { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Vm.Dispose();
        Host.Dispose();
        Plain.Dispose();
        File.Delete(_plainPath);
    }
}

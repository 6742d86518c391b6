using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Bench;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// What the swap-path benchmarks share: a host with room for four copies of the region and a swap file of the same
/// size, a VM whose RAM is the region, and a plain temporary file of the same pages (one page of header room) for the
/// same-run baseline rows, deleted when the rig is disposed.
/// </summary>
public sealed class SwapBenchRig : IDisposable
{
    private readonly string _plainPath;

    /// <summary>Builds the rig for <paramref name="bytes"/> of guest RAM; <paramref name="name"/> names the plain file.</summary>
    public SwapBenchRig(ulong bytes, string name, ReclaimOptions? reclaim = null)
    {
        Host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 4 * bytes },
            Swap = new SwapOptions { Kind = SwapDeviceKind.File, SizeBytes = 4 * bytes },
            Reclaim = reclaim ?? new ReclaimOptions(),
        });
        Vm = new BenchVm(Host, bytes);
        _plainPath = Path.Combine(Path.GetTempPath(), $"hv-{name}-plain-{Guid.NewGuid():N}");
        var length = (long)bytes + SwapBenchPages.PageSize;
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

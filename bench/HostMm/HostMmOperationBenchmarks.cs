using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.HostMm;

/// <summary>
/// The primary MMU's per-page costs over 1 GiB — demand-zero fault, munmap of populated memory, mprotect of
/// populated memory — against the same operations on the real kernel's memory in the same run (the
/// baseline of each category; the Ratio column is simulated / Linux). Means are per page.
/// Targets (issue 3): fault ≤ 300 ns/page, munmap ≤ 50 ns/page, mprotect ≤ 20 ns/page.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class HostMmOperationBenchmarks
{
    private const ulong Bytes = 1UL << 30;
    private const int Pages = (int)(Bytes / Paging.PageSize);

    private Host _host = null!;
    private Mm _mm = null!;
    private Hva _simulated;
    private nint _linux;
    private bool _executable;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 2UL << 30, NodeCount = 2 } });
        _mm = _host.CreateMm();
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _mm.Exit();
        _host.Dispose();
    }

    // ----- demand-zero fault -----

    [IterationSetup(Targets = [nameof(SimulatedFault)])]
    public void MapSimulated() => _simulated = _mm.Mmap(Bytes, Protection.Read | Protection.Write);

    [IterationCleanup(Targets = [nameof(SimulatedFault), nameof(SimulatedMprotect)])]
    public void UnmapSimulated() => _mm.Munmap(_simulated, Bytes);

    [Benchmark(OperationsPerInvoke = Pages, Description = "simulated: demand-zero write fault")]
    [BenchmarkCategory("fault")]
    public void SimulatedFault()
    {
        for (var page = _simulated; page < _simulated + Bytes; page += Paging.PageSize)
        {
            _mm.HandleFault(page, FaultAccess.Write);
        }
    }

    [IterationSetup(Targets = [nameof(LinuxFault)])]
    public void MapLinux() => _linux = LinuxMemory.MapAnonymous((nuint)Bytes, LinuxMemory.ProtRead | LinuxMemory.ProtWrite);

    [IterationCleanup(Targets = [nameof(LinuxFault), nameof(LinuxMprotect)])]
    public void UnmapLinux() => LinuxMemory.Unmap(_linux, (nuint)Bytes);

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "linux: demand-zero write fault")]
    [BenchmarkCategory("fault")]
    public unsafe void LinuxFault() // unsafe: touches the kernel mapping through a raw pointer.
    {
        var bytes = (byte*)_linux;
        for (nuint offset = 0; offset < (nuint)Bytes; offset += (nuint)Paging.PageSize)
        {
            bytes[offset] = 1;
        }
    }

    // ----- munmap of populated memory -----

    [IterationSetup(Targets = [nameof(SimulatedMunmap)])]
    public void MapAndPopulateSimulated() => _simulated = _mm.Mmap(Bytes, Protection.Read | Protection.Write, MmapFlags.Populate);

    [Benchmark(OperationsPerInvoke = Pages, Description = "simulated: munmap populated")]
    [BenchmarkCategory("munmap")]
    public void SimulatedMunmap() => _mm.Munmap(_simulated, Bytes);

    [IterationSetup(Targets = [nameof(LinuxMunmap)])]
    public unsafe void MapAndPopulateLinux() // unsafe: touches the kernel mapping through a raw pointer.
    {
        _linux = LinuxMemory.MapAnonymous((nuint)Bytes, LinuxMemory.ProtRead | LinuxMemory.ProtWrite);
        var bytes = (byte*)_linux;
        for (nuint offset = 0; offset < (nuint)Bytes; offset += (nuint)Paging.PageSize)
        {
            bytes[offset] = 1;
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "linux: munmap populated")]
    [BenchmarkCategory("munmap")]
    public void LinuxMunmap() => LinuxMemory.Unmap(_linux, (nuint)Bytes);

    // ----- mprotect of populated memory: read <-> read+exec changes every PTE both ways -----

    [IterationSetup(Targets = [nameof(SimulatedMprotect)])]
    public void MapPopulateAndReadOnlySimulated()
    {
        MapAndPopulateSimulated();
        _mm.Mprotect(_simulated, Bytes, Protection.Read);
        _executable = false;
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "simulated: mprotect populated")]
    [BenchmarkCategory("mprotect")]
    public void SimulatedMprotect()
    {
        _executable = !_executable;
        _mm.Mprotect(_simulated, Bytes, _executable ? Protection.Read | Protection.Execute : Protection.Read);
    }

    [IterationSetup(Targets = [nameof(LinuxMprotect)])]
    public void MapPopulateAndReadOnlyLinux()
    {
        MapAndPopulateLinux();
        LinuxMemory.Protect(_linux, (nuint)Bytes, LinuxMemory.ProtRead);
        _executable = false;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "linux: mprotect populated")]
    [BenchmarkCategory("mprotect")]
    public void LinuxMprotect()
    {
        _executable = !_executable;
        LinuxMemory.Protect(_linux, (nuint)Bytes, _executable ? LinuxMemory.ProtRead | LinuxMemory.ProtExec : LinuxMemory.ProtRead);
    }
}

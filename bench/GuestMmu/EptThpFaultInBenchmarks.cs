using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// EPT fault-in of 1 GiB of fresh guest memory, three ways in one run: with transparent huge pages (one EPT violation
/// per 2 MiB: get-user-pages takes a host huge fault that zeroes 2 MiB, the MMU installs one 2 MiB leaf), with 4 KiB
/// pages as the default host does, and the floor: zeroing the same 1 GiB of native memory. Target (issue 13): the THP
/// fault-in at most 1.5× the zeroing. Each benchmark is one operation per 1 GiB.
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public unsafe class EptThpFaultInBenchmarks // unsafe: the zeroing floor clears a native buffer.
{
    private const ulong Bytes = 1UL << 30;
    private const ulong HugeBytes = 2UL << 20;

    private Host _thpHost = null!;
    private Host _smallHost = null!;
    private BenchVm _thp = null!;
    private BenchVm _small = null!;
    private byte* _buffer;

    /// <summary>Two hosts (THP always, THP never) and the native buffer, touched once so zeroing it faults nothing.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        var memory = new HostMemoryOptions { TotalBytes = 3UL << 30 };
        _thpHost = new Host(new HostOptions { Memory = memory, TransparentHugePages = ThpMode.Always });
        _smallHost = new Host(new HostOptions { Memory = memory });
        _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, (nuint)HugeBytes);
        NativeMemory.Clear(_buffer, (nuint)Bytes);
    }

    /// <summary>Frees the hosts and the buffer.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _thpHost.Dispose();
        _smallHost.Dispose();
        NativeMemory.AlignedFree(_buffer);
    }

    /// <summary>Fresh guest memory in each host for every iteration (a fresh process maps it at a 2 MiB-aligned address).</summary>
    [IterationSetup]
    public void MapFreshGuestMemory()
    {
        _thp = new BenchVm(_thpHost, Bytes);
        _small = new BenchVm(_smallHost, Bytes);
        if (_thp.Ram.Value % HugeBytes != 0)
        {
            throw new InvalidOperationException($"guest memory at 0x{_thp.Ram.Value:x} is not 2 MiB-aligned: no 2 MiB EPT leaves");
        }
    }

    /// <summary>Ends both processes.</summary>
    [IterationCleanup]
    public void Teardown()
    {
        _thp.Dispose();
        _small.Dispose();
    }

    /// <summary>The floor: zero 1 GiB.</summary>
    [Benchmark(Baseline = true, Description = "zero 1 GiB (the floor)")]
    public void Zero() => NativeMemory.Clear(_buffer, (nuint)Bytes);

    /// <summary>1 GiB through 2 MiB EPT leaves over host huge pages: 512 violations.</summary>
    [Benchmark(Description = "EPT fault-in 1 GiB, THP (2 MiB sptes)")]
    public long FaultInThp()
    {
        var mmu = _thp.Mmu;
        for (ulong gfn = 0; gfn < Bytes >> 12; gfn += HugeBytes >> 12)
        {
            mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
        }

        var pages2M = mmu.Stats.Pages2M;
        return pages2M == (long)(Bytes / HugeBytes) ? pages2M : throw new InvalidOperationException($"{pages2M} 2 MiB sptes after the fault-in, expected {Bytes / HugeBytes}");
    }

    /// <summary>The host's share: 1 GiB of host huge faults alone (MAP_POPULATE, no EPT), 512 huge pages allocated and zeroed.</summary>
    [Benchmark(Description = "host THP populate 1 GiB (no EPT)")]
    public void HostHugeFaults()
    {
        var mm = _thpHost.CreateMm();
        try
        {
            mm.Mmap(Bytes, Protection.Read | Protection.Write, MmapFlags.Populate);
        }
        finally
        {
            mm.Exit();
        }
    }

    /// <summary>1 GiB at 4 KiB, as without THP: 262,144 violations.</summary>
    [Benchmark(Description = "EPT fault-in 1 GiB, 4 KiB sptes")]
    public void FaultIn4K()
    {
        var mmu = _small.Mmu;
        for (ulong gfn = 0; gfn < Bytes >> 12; gfn++)
        {
            mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
        }
    }
}

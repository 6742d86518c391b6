using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// A remote TLB flush (KVM's <c>kvm_flush_remote_tlbs</c>, <see cref="TlbShootdown.FlushAll"/>) from a host thread
/// across 1, 2 and 4 vCPUs that are running: each vCPU is a thread in guest mode whose loop is the interpreter's
/// block boundary (serve requests) followed by 64 soft-TLB lookups, about a short block's worth of memory accesses.
/// The time is from posting the requests to the last acknowledgement, so it is bounded below by the slowest vCPU's
/// distance to its next boundary and, when vCPU threads outnumber cores, by the scheduler: with 4 vCPU threads on a
/// 2-core machine a flush may wait for a thread that is not running. The 0-vCPU row is the posting cost alone.
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class TlbShootdownBenchmarks
{
    private const int LookupsPerBlock = 64;

    private TdpMmu _mmu = null!;
    private MmuContext[] _vcpus = [];
    private Thread[] _threads = [];
    private volatile bool _stop;

    /// <summary>vCPU threads in guest mode during the flush.</summary>
    [Params(0, 1, 2, 4)]
    public int RunningVcpus { get; set; }

    /// <summary>Starts the vCPU threads and waits until every one is in guest mode.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _mmu = new TdpMmu(new TlbShootdown());
        _stop = false;
        _vcpus = [.. Enumerable.Range(0, RunningVcpus).Select(id => new MmuContext(_mmu, id))];
        _threads = [.. _vcpus.Select(vcpu => new Thread(() => RunVcpu(vcpu)) { IsBackground = true })];
        foreach (var thread in _threads)
        {
            thread.Start();
        }

        foreach (var vcpu in _vcpus)
        {
            SpinWait.SpinUntil(() => vcpu.Port.Mode == VcpuMode.InGuest);
        }
    }

    /// <summary>One remote flush, waited for.</summary>
    [Benchmark]
    public void FlushAllRunningVcpus() => _mmu.Shootdown.FlushAll();

    /// <summary>Stops the vCPU threads.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        foreach (var thread in _threads)
        {
            thread.Join();
        }

        foreach (var vcpu in _vcpus)
        {
            vcpu.Dispose();
        }
    }

    private unsafe void RunVcpu(MmuContext vcpu) // unsafe: TLB lookups return host pointers (unused here).
    {
        vcpu.Port.EnterGuest();
        var found = 0L;
        while (!_stop)
        {
            vcpu.Port.ServiceRequests();
            for (var n = 0; n < LookupsPerBlock; n++)
            {
                found += vcpu.Tlb.TryLookup(new Gva((ulong)n << Paging.PageShift), GuestAccess.Read, out _) ? 1 : 0;
            }
        }

        vcpu.Port.ExitGuest();
        GC.KeepAlive(found);
    }
}

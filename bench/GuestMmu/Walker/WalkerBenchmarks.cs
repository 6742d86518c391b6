using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu.Walker;

/// <summary>
/// The soft TLB hit path and a full two-dimensional walk (4 guest levels, each page-table read translated
/// through a warm EPT, then the final gpa) over 64 guest pages mapped with 4 KiB leaves.
/// </summary>
[MemoryDiagnoser]
public unsafe class WalkerBenchmarks : IDisposable
{
    private const int Pages = 64;
    private const ulong PageSize = 4096;
    private const ulong Base = 0xFFFF_8000_0000_0000;
    private const int Lookups = 1024;

    private Host _host = null!;
    private BenchVm _vm = null!;
    private MmuContext _context = null!;
    private PagingContext _paging;

    /// <summary>Builds guest memory, page tables (pages 1–4) and a warm EPT.</summary>
    [GlobalSetup]
    public void Setup()
    {
        const ulong guestPages = 16 + Pages;
        _host = BenchVm.CreateHost(guestPages * PageSize);
        _vm = new BenchVm(_host, guestPages * PageSize);

        // PML4 at page 1, PDPT at 2, PD at 3, PT at 4; data from page 16.
        const ulong flags = 0x1 | 0x2 | 0x20 | 0x40; // P, W, A, D: the measured walks do not write guest entries.
        WriteEntry(1, (int)((Base >> 39) & 511), (2 * PageSize) | flags);
        WriteEntry(2, (int)((Base >> 30) & 511), (3 * PageSize) | flags);
        WriteEntry(3, (int)((Base >> 21) & 511), (4 * PageSize) | flags);
        for (var i = 0; i < Pages; i++)
        {
            WriteEntry(4, i, ((16 + (ulong)i) * PageSize) | flags);
        }

        _paging = PagingContext.LongMode(new Gpa(PageSize));
        _context = new MmuContext(_vm.Mmu, 0, _paging);
        for (var i = 0; i < Pages; i++)
        {
            _context.Write(new Gva(Base + ((ulong)i * PageSize)), [1]);
        }
    }

    /// <summary>Frees the host.</summary>
    [GlobalCleanup]
    public void Dispose()
    {
        _context?.Dispose();
        _vm?.Dispose();
        _host?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>TLB hits: a read lookup per call over 64 cached pages.</summary>
    [Benchmark(OperationsPerInvoke = Lookups)]
    public nint TlbHit()
    {
        var tlb = _context.Tlb;
        nint sum = 0;
        for (var i = 0; i < Lookups; i++)
        {
            tlb.TryLookup(new Gva(Base + ((ulong)(i & (Pages - 1)) * PageSize) + 8), GuestAccess.Read, out var host);
            sum += (nint)host;
        }

        return sum;
    }

    /// <summary>A TLB miss: the full two-dimensional walk of one address (warm EPT, A/D already set).</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public nint WalkMiss()
    {
        var walker = _context.Walker;
        nint sum = 0;
        for (var i = 0; i < Pages; i++)
        {
            sum += walker.Translate(_paging, new Gva(Base + ((ulong)i * PageSize)), GuestAccess.Read).HostAddress;
        }

        return sum;
    }

    private void WriteEntry(ulong tablePage, int index, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        _vm.Mm.Write(_vm.Ram + (tablePage * PageSize) + ((ulong)index * 8), bytes);
    }
}

using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.HostMm.Migration;

/// <summary>
/// Page migration per 4 KiB page — isolate, lock, unmap to a migration entry inside start/end, freeze, copy data and
/// state, restore the PTE, free the old frame — against the floor: a plain 4 KiB copy from a frame of one node's arena
/// to a frame of the other's, in the same run (the baseline; Ratio = migration / copy). Each invocation moves 64 MiB of
/// a process's memory to the other node (the direction alternates). Target (issue 13): ≤ 3× the copy.
/// </summary>
public class MigrationBenchmarks
{
    private const ulong Bytes = 64UL << 20;
    private const int Pages = (int)(Bytes / Paging.PageSize);

    private Host _host = null!;
    private Mm _mm = null!;
    private Hva _start;
    private Pfn[] _sources = [];
    private Pfn[] _targets = [];
    private int _toNode = 1;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 512UL << 20, NodeCount = 2 } });
        _mm = _host.CreateMm(0);
        _start = _mm.Mmap(Bytes, Protection.Read | Protection.Write);
        var page = new byte[Paging.PageSize];
        for (var i = 0; i < Pages; i++)
        {
            BitConverter.TryWriteBytes(page, i);
            _mm.Write(_start + ((ulong)i * Paging.PageSize), page);
        }

        _sources = [.. Enumerable.Range(0, Pages).Select(i => _mm.PageTable.Read(_start + ((ulong)i * Paging.PageSize)).Pfn)];
        _targets = [.. Enumerable.Range(0, Pages).Select(_ => _host.Memory.Allocate(1, AllocationFlags.ExactNode))];
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        foreach (var pfn in _targets)
        {
            _host.Memory.Put(pfn);
        }

        _mm.Exit();
        _host.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "4 KiB copy, node 0 arena → node 1 arena")]
    public void PlainCopy()
    {
        var memory = _host.Memory;
        for (var i = 0; i < _sources.Length; i++)
        {
            memory.FrameBytes(_sources[i]).CopyTo(memory.FrameBytes(_targets[i]));
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "migrate 4 KiB page to the other node")]
    public long Migrate()
    {
        var moved = _host.Migration.MigrateRange(_mm, _start, _start + Bytes, _toNode);
        if (moved.Migrated != Pages)
        {
            throw new InvalidOperationException($"migrated {moved.Migrated} of {Pages} pages ({moved})");
        }

        _toNode ^= 1;
        return moved.Migrated;
    }
}

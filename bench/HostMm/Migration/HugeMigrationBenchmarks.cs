using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.HostMm.Migration;

/// <summary>
/// Migration of a transparent huge page per 2 MiB — pages locked, start/end around the leaf's clear and flush, the 2 MiB
/// copied with each frame's state, the new leaf installed, the old block freed — against the floor: a plain 2 MiB copy
/// from a block of one node's arena to a block of the other's, in the same run (the baseline; Ratio = migration / copy).
/// Each invocation moves 64 MiB (32 huge pages) to the other node (the direction alternates). Target (issue 13): ≤ 3×.
/// </summary>
public class HugeMigrationBenchmarks
{
    private const ulong Huge = 2UL << 20;
    private const int HugePages = 32;
    private const ulong Bytes = HugePages * Huge;

    private Host _host = null!;
    private Mm _mm = null!;
    private Hva _start;
    private Pfn[] _sources = [];
    private Pfn[] _targets = [];
    private int _toNode = 1;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 512UL << 20, NodeCount = 2 },
            TransparentHugePages = ThpMode.Always,
        });
        _mm = _host.CreateMm(0);
        var region = _mm.Mmap(Bytes + Huge, Protection.Read | Protection.Write);
        _start = new Hva((region.Value + Huge - 1) & ~(Huge - 1));
        for (var i = 0UL; i < HugePages * 512UL; i++)
        {
            _mm.Write(_start + (i * Paging.PageSize), BitConverter.GetBytes(i));
        }

        if (_mm.ThpStats.HugeLeaves != HugePages)
        {
            throw new InvalidOperationException($"expected {HugePages} huge pages, got {_mm.ThpStats.HugeLeaves}");
        }

        _sources = [.. Enumerable.Range(0, HugePages).Select(i => _mm.PageTable.ReadPmd(_start + ((ulong)i * Huge)).Pfn)];
        _targets = [.. Enumerable.Range(0, HugePages).Select(_ => _host.Memory.TryAllocateBlock(1, AllocationFlags.ExactNode, out var block) ? block : throw new InvalidOperationException("no block on node 1"))];
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        foreach (var block in _targets)
        {
            for (var i = 0UL; i < 512; i++)
            {
                _host.Memory.Put(block + i);
            }
        }

        _mm.Exit();
        _host.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = HugePages, Description = "2 MiB copy, node 0 arena → node 1 arena")]
    public unsafe void PlainCopy() // unsafe: one 2 MiB copy between raw arena blocks.
    {
        var memory = _host.Memory;
        for (var i = 0; i < HugePages; i++)
        {
            new ReadOnlySpan<byte>(memory.FrameAddress(_sources[i]), (int)Huge).CopyTo(new Span<byte>(memory.FrameAddress(_targets[i]), (int)Huge));
        }
    }

    [Benchmark(OperationsPerInvoke = HugePages, Description = "migrate a 2 MiB huge page to the other node")]
    public long Migrate()
    {
        var moved = _host.Migration.MigrateRange(_mm, _start, _start + Bytes, _toNode);
        if (moved.HugePages != HugePages)
        {
            throw new InvalidOperationException($"migrated {moved.HugePages} of {HugePages} huge pages ({moved})");
        }

        _toNode ^= 1;
        _sources = [.. Enumerable.Range(0, HugePages).Select(i => _mm.PageTable.ReadPmd(_start + ((ulong)i * Huge)).Pfn)];
        return moved.HugePages;
    }
}

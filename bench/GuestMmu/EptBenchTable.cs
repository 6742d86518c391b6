using System.Runtime.Intrinsics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// A page table densely mapped with 4 KiB leaves over <c>[0, frames)</c>, plus the addresses of its leaf
/// tables so a baseline can memset or scan exactly the bytes the EPT operation touches.
/// </summary>
internal sealed unsafe class EptBenchTable : IDisposable
{
    private readonly EptPageTable _ept;
    private readonly nint[] _leafTables;

    public EptBenchTable(ulong frames, Spte template, HardwareAdPolicy policy = HardwareAdPolicy.DirtyUnderMmuLock, EptVectorWidth? width = null)
    {
        _ept = new EptPageTable(policy: policy, vectorWidth: width);
        Frames = frames;
        Fill(template);
        _leafTables = new nint[frames / 512];
        for (var t = 0; t < _leafTables.Length; t++)
        {
            var index = _ept.ReadAt(new Gfn((ulong)t * 512), 2).TableIndex;
            fixed (ulong* p = _ept.Arena.Table(index))
            {
                _leafTables[t] = (nint)p; // native memory: the pointer stays valid after the fixed block.
            }
        }
    }

    public EptPageTable Ept => _ept;

    public ulong Frames { get; }

    public long LeafTableBytes => (long)_leafTables.Length * 4096;

    /// <summary>Rewrites every leaf (bulk fill, not the fault path).</summary>
    public void Fill(Spte template) => _ept.PopulateLeaves(new Gfn(0), new Gfn(Frames), new Pfn(0x10_0000), template);

    /// <summary>The baseline for zap: <c>Span.Clear</c> of every leaf table.</summary>
    public void MemsetLeafTables()
    {
        foreach (var table in _leafTables)
        {
            new Span<ulong>((void*)table, 512).Clear();
        }
    }

    /// <summary>The baseline for aging: read every byte of every leaf table once (widest vector OR-reduction).</summary>
    public ulong ScanLeafTables()
    {
        var accumulator = Vector512<ulong>.Zero;
        foreach (var table in _leafTables)
        {
            var p = (ulong*)table;
            for (var i = 0; i < 512; i += 8)
            {
                accumulator |= Vector512.Load(p + i);
            }
        }

        return Vector512.Sum(accumulator);
    }

    public void Dispose() => _ept.Dispose();
}

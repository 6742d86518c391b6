using System.Runtime.Intrinsics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Bench;

/// <summary>
/// The EPT setup of the zap and aging benchmarks, shared by <c>bench/</c> (BenchmarkDotNet) and
/// <c>hv bench</c>: a page table densely mapped with 4 KiB leaves over <c>[0, frames)</c>, and the in-range
/// entries of each of its leaf tables, so a baseline clears or scans exactly the bytes the EPT operation
/// touches.
/// </summary>
/// <remarks>
/// <see cref="MemsetLeafTables"/> writes table memory behind the table's back: over present entries it
/// leaves the per-table counts stale (a later zap then takes the reading path). Run it on zapped tables,
/// or in a process that never zaps the table afterwards (each BenchmarkDotNet case has its own).
/// </remarks>
public sealed unsafe class EptBenchTable : IDisposable // unsafe: the baselines address leaf-table memory by pointer.
{
    /// <summary>The frame the leaf for gfn 0 maps; gfn g maps <c>FirstPfn + g</c>.</summary>
    public const ulong FirstPfn = 0x10_0000;

    private readonly EptPageTable _ept;
    private readonly nint[] _runs;
    private readonly int[] _runLengths;

    /// <summary>Creates the table and fills it with <paramref name="template"/> leaves.</summary>
    /// <param name="frames">Guest frames mapped, from gfn 0.</param>
    /// <param name="template">A present 4 KiB leaf; each leaf is this with its own pfn.</param>
    /// <param name="policy">The table's hardware A/D contract.</param>
    /// <param name="width">The table's bulk-kernel path; null for the widest the CPU accelerates.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frames"/> is 0 or beyond the guest-physical space.</exception>
    public EptBenchTable(ulong frames, Spte template, HardwareAdPolicy policy = HardwareAdPolicy.DirtyUnderMmuLock, EptVectorWidth? width = null)
    {
        if (frames == 0 || frames > EptGeometry.GfnLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(frames), frames, $"a bench table maps 1 to 0x{EptGeometry.GfnLimit:x} frames");
        }

        _ept = new EptPageTable(policy: policy, vectorWidth: width);
        Frames = frames;
        Fill(template);

        // The in-range part of every leaf table, found with the EPT's own iterator.
        var runs = new List<(nint Start, int Length)>();
        var it = _ept.Iterate(default, new Gfn(frames));
        while (it.MoveNext())
        {
            if (it.Level == 1)
            {
                var run = it.LeafRun;
                fixed (ulong* start = run)
                {
                    runs.Add(((nint)start, run.Length)); // native memory: the address outlives the fixed block.
                }

                it.SkipLeafRun();
            }
        }

        _runs = [.. runs.Select(r => r.Start)];
        _runLengths = [.. runs.Select(r => r.Length)];
    }

    /// <summary>The page table.</summary>
    public EptPageTable Ept => _ept;

    /// <summary>Frames mapped, from gfn 0.</summary>
    public ulong Frames { get; }

    /// <summary>Rewrites every leaf from <paramref name="template"/> (a bulk fill, not the fault path).</summary>
    public void Fill(Spte template) => _ept.PopulateLeaves(new Gfn(0), new Gfn(Frames), new Pfn(FirstPfn), template);

    /// <summary>The zap baseline: <c>Span.Clear</c> of the leaf-table entries (see the remarks on counts).</summary>
    public void MemsetLeafTables()
    {
        for (var i = 0; i < _runs.Length; i++)
        {
            new Span<ulong>((void*)_runs[i], _runLengths[i]).Clear();
        }
    }

    /// <summary>The aging baseline: reads every leaf-table entry once (the widest accelerated vector OR-reduction) and returns their OR.</summary>
    public ulong ScanLeafTables() => Vector512.IsHardwareAccelerated ? Scan512() : Scan256();

    /// <summary>Releases the table.</summary>
    public void Dispose() => _ept.Dispose();

    /// <summary>The scan with 512-bit vectors (software-emulated where unaccelerated).</summary>
    internal ulong Scan512()
    {
        var accumulator = Vector512<ulong>.Zero;
        ulong tail = 0;
        for (var r = 0; r < _runs.Length; r++)
        {
            var p = (ulong*)_runs[r];
            var length = _runLengths[r];
            var i = 0;
            for (; i + 8 <= length; i += 8)
            {
                accumulator |= Vector512.Load(p + i);
            }

            for (; i < length; i++)
            {
                tail |= p[i];
            }
        }

        for (var lane = 0; lane < Vector512<ulong>.Count; lane++)
        {
            tail |= accumulator[lane];
        }

        return tail;
    }

    /// <summary>The scan with 256-bit vectors.</summary>
    internal ulong Scan256()
    {
        var accumulator = Vector256<ulong>.Zero;
        ulong tail = 0;
        for (var r = 0; r < _runs.Length; r++)
        {
            var p = (ulong*)_runs[r];
            var length = _runLengths[r];
            var i = 0;
            for (; i + 4 <= length; i += 4)
            {
                accumulator |= Vector256.Load(p + i);
            }

            for (; i < length; i++)
            {
                tail |= p[i];
            }
        }

        for (var lane = 0; lane < Vector256<ulong>.Count; lane++)
        {
            tail |= accumulator[lane];
        }

        return tail;
    }
}

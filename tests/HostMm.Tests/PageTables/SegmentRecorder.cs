using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.PageTables;

/// <summary>One visited PTE-table segment.</summary>
public readonly record struct Segment(Hva First, int Count, Pfn Table, bool LockHeld);

/// <summary>Records every segment a walk visits; stops after <see cref="StopAfter"/> segments when set.</summary>
public struct SegmentRecorder : IPteVisitor
{
    public SegmentRecorder(HostMemory memory, int stopAfter = int.MaxValue)
    {
        Memory = memory;
        StopAfter = stopAfter;
        Segments = [];
    }

    public HostMemory Memory { get; }

    public int StopAfter { get; }

    public List<Segment> Segments { get; }

    public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        Segments.Add(new Segment(firstAddress, entries.Length, tablePfn, Memory.Frame(tablePfn).Has(FrameFlags.Locked)));
        return Segments.Count < StopAfter;
    }
}

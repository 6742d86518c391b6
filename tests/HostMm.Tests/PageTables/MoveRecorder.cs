using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.PageTables;

/// <summary>One <see cref="IPteMoveVisitor.BeforeUnlock"/> call and the PTL state of the old and new tables at that moment.</summary>
public readonly record struct MoveChunk(Hva FromStart, Hva FromEnd, bool OldLocked, bool NewLocked);

/// <summary>Records moves and chunks; checks the PTLs through the table it is given.</summary>
public struct MoveRecorder : IPteMoveVisitor
{
    private readonly HostPageTable _table;
    private readonly ulong _delta;

    /// <param name="table">The table being moved in.</param>
    /// <param name="delta">newStart − oldStart, to find the new table of a chunk.</param>
    public MoveRecorder(HostPageTable table, ulong delta)
    {
        _table = table;
        _delta = delta;
        Moves = [];
        Chunks = [];
    }

    public List<(Hva From, Hva To, HostPte Pte)> Moves { get; }

    public List<MoveChunk> Chunks { get; }

    public readonly void Moved(Hva from, Hva to, HostPte pte) => Moves.Add((from, to, pte));

    public readonly void BeforeUnlock(Hva fromStart, Hva fromEnd) =>
        Chunks.Add(new MoveChunk(fromStart, fromEnd, IsLocked(fromStart), IsLocked(fromStart + _delta)));

    private readonly bool IsLocked(Hva address) =>
        _table.Memory.Frame(PageTableTestSupport.PteTableOf(_table, address)).Has(FrameFlags.Locked);
}

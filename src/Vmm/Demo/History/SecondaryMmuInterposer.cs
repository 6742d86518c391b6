using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// Stands on the real process's chain in place of the secondary MMU (<see cref="TdpMmu"/>): records each callback in the
/// timeline, lets the <see cref="StepScheduler"/> hold a release at its entry (<see cref="HistoryPoint.ReleaseReachedMmu"/>,
/// before anything is zapped), and forwards the callback to the MMU, naming the MMU's <see cref="SecondaryMmuView"/>.
/// Implements release and range start/end only: the races replayed here need no aging.
/// </summary>
internal sealed class SecondaryMmuInterposer : IMmuNotifier
{
    private readonly TdpMmu _mmu;
    private readonly SecondaryMmuView _view;
    private readonly NotifierEventRecorder _recorder;
    private readonly StepScheduler _scheduler;
    private int _releases;

    /// <summary>Creates the interposer for <paramref name="mmu"/>, whose memslots name <paramref name="view"/>.</summary>
    public SecondaryMmuInterposer(TdpMmu mmu, SecondaryMmuView view, NotifierEventRecorder recorder, StepScheduler scheduler)
    {
        _mmu = mmu;
        _view = view;
        _recorder = recorder;
        _scheduler = scheduler;
    }

    /// <summary>How many times the chain called release on the MMU (exactly once is the contract).</summary>
    public int Releases => Volatile.Read(ref _releases);

    /// <inheritdoc />
    public void Release(IMm mm)
    {
        Interlocked.Increment(ref _releases);
        _recorder.Release(mm);
        _scheduler.Hold(HistoryPoint.ReleaseReachedMmu);
        var before = _mmu.Stats.Zapped;
        _mmu.Release(_view);
        Note(mm, $"MMU released: {_mmu.Stats.Zapped - before} sptes zapped, new faults refused");
    }

    /// <inheritdoc />
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        _recorder.InvalidateRangeStart(in range);
        var before = _mmu.Stats.Zapped;
        var forwarded = Forward(in range);
        var accepted = _mmu.InvalidateRangeStart(in forwarded);
        var zapped = _mmu.Stats.Zapped - before;
        if (zapped != 0)
        {
            Note(range.Mm, $"MMU zapped {zapped} spte{(zapped == 1 ? string.Empty : "s")}", range.Start, range.End);
        }

        return accepted;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        _recorder.InvalidateRangeEnd(in range);
        var forwarded = Forward(in range);
        _mmu.InvalidateRangeEnd(in forwarded);
    }

    private NotifierRange Forward(in NotifierRange range) =>
        new(_view, range.Start, range.End, range.Event, range.IsBlockable, range.Owner);

    private void Note(IMm mm, string label, Hva start = default, Hva end = default) =>
        _recorder.RecordHost(NotifierTraceKind.Mark, mm.Id, start, end, label: label);
}

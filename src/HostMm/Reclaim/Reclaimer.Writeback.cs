using System.Diagnostics;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Asynchronous swap writeback: submitting a run, and its checksums, write and completion on the I/O thread.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Hands one run of pending pageouts (<paramref name="pending"/>[<paramref name="start"/>..<paramref name="end"/>),
    /// indices into <paramref name="batch"/>, contiguous slots from <paramref name="firstSlot"/>) to the I/O thread with
    /// the frames' page locks and isolation references.
    /// </summary>
    private void SubmitWriteback(Lruvec lruvec, ReadOnlySpan<uint> batch, ReadOnlySpan<int> pending, int start, int end, ulong firstSlot, WritebackTicket ticket)
    {
        var run = new WritebackRun { FirstSlot = firstSlot, Count = end - start, Lruvec = lruvec, Ticket = ticket };
        for (var j = start; j < end; j++)
        {
            run.Frames[j - start] = batch[pending[j]];
        }

        Writeback!.Submit(run);
    }

    /// <summary>
    /// The I/O thread's half of a run: takes the pages' checksums and writes them (<see cref="SwapArea.WriteFrames"/>:
    /// the CRC-32C reads each frame from memory and the write then copies it from this core's cache, where a checksum
    /// taken on the submitting thread left the copy to fetch it from the other core's), ends each page's pageout as the
    /// synchronous path does (<see cref="FinishPageout"/>) and puts back the pages it keeps as <c>madvise</c>'s reclaim
    /// does. Returns the pages freed.
    /// </summary>
    internal long CompleteWriteback(ref WritebackRun run)
    {
        Span<nint> frames = stackalloc nint[run.Count];
        for (var i = 0; i < run.Count; i++)
        {
            frames[i] = FrameAddress(new Pfn(run.Frames[i]));
        }

        var trace = _host.Trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var written = Area!.WriteFrames(run.FirstSlot, frames);
        trace?.SwapIo(write: true, run.FirstSlot, run.Count, Area.CountSameFilled(run.FirstSlot, run.Count), written.Status == SwapIoStatus.Ok, started);

        long reclaimed = 0;
        for (var i = 0; i < run.Count; i++)
        {
            var pfn = new Pfn(run.Frames[i]);
            reclaimed += SettleAdvised(pfn, FinishPageout(run.Lruvec, pfn, written.Status == SwapIoStatus.Ok));
        }

        return reclaimed;
    }
}

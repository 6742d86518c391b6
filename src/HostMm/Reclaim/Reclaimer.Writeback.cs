using System.Diagnostics;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Asynchronous swap writeback: submitting a checksummed run, and its completion on the I/O thread.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Hands one run of pending pageouts (<paramref name="pending"/>[<paramref name="start"/>..<paramref name="end"/>),
    /// indices into <paramref name="batch"/>, contiguous slots from <paramref name="firstSlot"/>) to the I/O thread:
    /// their checksums are taken here, from the locked, unmapped, clean frames, and the frames' page locks and
    /// isolation references go with the run.
    /// </summary>
    private void SubmitWriteback(Lruvec lruvec, ReadOnlySpan<uint> batch, ReadOnlySpan<int> pending, int start, int end, ulong firstSlot, WritebackTicket ticket)
    {
        var run = new WritebackRun { FirstSlot = firstSlot, Count = end - start, Lruvec = lruvec, Ticket = ticket };
        Span<nint> frames = stackalloc nint[end - start];
        for (var j = start; j < end; j++)
        {
            var index = batch[pending[j]];
            run.Frames[j - start] = index;
            frames[j - start] = FrameAddress(new Pfn(index));
        }

        Area!.ChecksumFrames(firstSlot, frames);
        Writeback!.Submit(run);
    }

    /// <summary>
    /// The I/O thread's half of a run: writes it and ends each page's pageout as the synchronous path does
    /// (<see cref="FinishPageout"/>), then puts back the pages it keeps as <c>madvise</c>'s reclaim does. Returns the
    /// pages freed.
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
        var written = Area!.WriteChecksummedFrames(run.FirstSlot, frames);
        trace?.SwapIo(write: true, run.FirstSlot, run.Count, written.Status == SwapIoStatus.Ok, started);

        long reclaimed = 0;
        for (var i = 0; i < run.Count; i++)
        {
            var pfn = new Pfn(run.Frames[i]);
            switch (FinishPageout(run.Lruvec, pfn, written.Status == SwapIoStatus.Ok))
            {
                case FolioOutcome.Reclaimed:
                    reclaimed++;
                    break;
                case FolioOutcome.Activate:
                    PutBack(pfn, LruList.Active);
                    break;
                default:
                    PutBack(pfn, LruList.Inactive);
                    break;
            }
        }

        return reclaimed;
    }
}

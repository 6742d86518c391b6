namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// Reclaim's asynchronous swap writeback (Linux's <c>pageout</c> submitting the bio and going on): a bounded FIFO of
/// write runs and one I/O thread that writes each run and completes it (<see cref="Reclaimer.CompleteWriteback"/>:
/// each page freed when still clean and unmapped, else put back; a failed write redirties the pages and keeps them).
/// The submitting reclaim call goes on to isolate and unmap its next batch meanwhile, and waits for its own runs with
/// <see cref="Drain"/> before it returns.
/// </summary>
/// <remarks>
/// <para>A page under writeback stays isolated (on no LRU list, so no reclaimer sees it), in the swap cache behind its
/// swap PTEs, and holds its page lock (<see cref="Frames.FrameFlags.Locked"/>) from the unmap to the end of its
/// completion: the lock is handed from the submitting thread to the I/O thread with the run. So every other path
/// meets a page under writeback exactly as it met one during the synchronous write — a fault (host or EPT, through
/// get-user-pages) on its swap entry waits on the lock and then finds it in the swap cache (or, once freed, reads the
/// slot the write filled); munmap, exit and MADV_DONTNEED drop their slot references and leave the page to the
/// completion; migration, KSM and reclaim only try the lock. Where Linux unlocks the folio and marks it
/// PG_writeback (waiting on writeback only where stable pages are required), the lock here is that wait always.</para>
/// <para>The I/O thread starts with the first run and ends after a quiet <see cref="IdleTimeout"/>; at most
/// <see cref="Capacity"/> runs are queued (a submitter waits for room). Lock order: the gate is a leaf for submitters
/// (held only to queue or dequeue); a completion runs outside it and takes only the locks of a synchronous pageout's
/// end (LRU, swap cluster, frame release).</para>
/// </remarks>
internal sealed class SwapWriteback : IDisposable
{
    /// <summary>Runs queued or being written at most (16 × 32 pages: 2 MiB in flight).</summary>
    public const int Capacity = 16;

    /// <summary>A submitter that found the queue full sleeps until it is down to this many runs (so it sleeps once per several runs, not per run).</summary>
    private const int ResumeAt = Capacity / 2;

    /// <summary>How long the I/O thread waits for a run before it ends.</summary>
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromMilliseconds(200);

    private readonly Reclaimer _owner;
    private readonly object _gate = new();
    private readonly WritebackRun[] _ring = new WritebackRun[Capacity];
    private int _head;
    private int _count;
    private long _pages;
    private long _submitted;
    private int _submittersWaiting;
    private int _drainersWaiting;
    private bool _workerWaiting;
    private bool _disposed;
    private Thread? _thread;

    public SwapWriteback(Reclaimer owner)
    {
        _owner = owner;
    }

    /// <summary>Pages queued or being written now (Linux's <c>nr_writeback</c>).</summary>
    public long PagesInFlight => Volatile.Read(ref _pages);

    /// <summary>Pages submitted since the host started.</summary>
    public long PagesSubmitted => Volatile.Read(ref _submitted);

    /// <summary>A new ticket for one reclaim call's runs.</summary>
    public static WritebackTicket Open() => new();

    /// <summary>
    /// Queues <paramref name="run"/> (its frames' page locks go with it), waiting while <see cref="Capacity"/> runs are
    /// in flight, and starts the I/O thread when none runs.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The host is being disposed.</exception>
    public void Submit(in WritebackRun run)
    {
        lock (_gate)
        {
            if (_count == Capacity)
            {
                _submittersWaiting++;
                while (_count > ResumeAt)
                {
                    Monitor.Wait(_gate);
                }

                _submittersWaiting--;
            }

            ObjectDisposedException.ThrowIf(_disposed, this);
            _ring[(_head + _count) % Capacity] = run;
            _count++;
            _pages += run.Count;
            _submitted += run.Count;
            run.Ticket.Pending++;
            if (_thread is null)
            {
                _thread = new Thread(Work) { IsBackground = true, Name = "swap-writeback" };
                _thread.Start();
            }
            else if (_workerWaiting)
            {
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>
    /// Waits until every run of <paramref name="ticket"/> has completed; returns the pages their completions freed.
    /// </summary>
    /// <exception cref="InvalidOperationException">A completion broke an invariant (its exception is the inner one).</exception>
    public long Drain(WritebackTicket ticket)
    {
        lock (_gate)
        {
            if (ticket.Pending > 0)
            {
                _drainersWaiting++;
                while (ticket.Pending > 0)
                {
                    Monitor.Wait(_gate);
                }

                _drainersWaiting--;
            }
        }

        if (ticket.Failure is { } failure)
        {
            throw new InvalidOperationException($"swap writeback failed completing a run: {failure.Message}", failure);
        }

        return ticket.Reclaimed;
    }

    /// <summary>Lets the I/O thread finish what is queued and end.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            _disposed = true;
            thread = _thread;
            Monitor.PulseAll(_gate);
        }

        thread?.Join();
    }

    private void Work()
    {
        while (true)
        {
            WritebackRun run;
            lock (_gate)
            {
                while (_count == 0)
                {
                    _workerWaiting = true;
                    var woken = !_disposed && Monitor.Wait(_gate, IdleTimeout);
                    _workerWaiting = false;
                    if (!woken && _count == 0)
                    {
                        _thread = null;
                        return;
                    }
                }

                run = _ring[_head];
            }

            long reclaimed = 0;
            Exception? failure = null;
            try
            {
                reclaimed = _owner.CompleteWriteback(ref run);
            }
            catch (Exception e)
            {
                failure = e; // handed to the submitter's Drain: a broken invariant must not die unseen on this thread
            }

            lock (_gate)
            {
                _ring[_head] = default;
                _head = (_head + 1) % Capacity;
                _count--;
                _pages -= run.Count;
                run.Ticket.Reclaimed += reclaimed;
                run.Ticket.Failure ??= failure;
                run.Ticket.Pending--;
                if ((_drainersWaiting > 0 && run.Ticket.Pending == 0) || (_submittersWaiting > 0 && _count <= ResumeAt))
                {
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }
}

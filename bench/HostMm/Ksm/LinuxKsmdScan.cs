using System.Diagnostics;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// Linux's ksmd scanning <see cref="Pages"/> mergeable pages of unique contents in this process: the peer of the
/// simulated scanner's scan-rate row. Construction saves every knob and sets <c>pages_to_scan</c> to 4 × the page
/// count, <c>sleep_millisecs=0</c>,
/// <c>smart_scan=0</c> (unchanged pages are scanned, not skipped, as on the simulated side) and
/// <c>advisor_mode=none</c> (the advisor would retune <c>pages_to_scan</c>); <see cref="Dispose"/> unmaps and
/// restores them all, <c>run</c> included.
/// </summary>
/// <remarks>
/// <para>A ksmd batch ends where the scan wraps: the call after the last page bumps <c>full_scans</c> and ends the
/// batch. With <c>pages_to_scan</c> exactly the page count that call falls into the next batch, which then scans
/// nothing, so two increments of <c>full_scans</c> would span one scan (measured: 65 690 pages for "2 scans" of
/// 65 536); with more than the page count every batch is one whole scan ending in its increment.</para>
/// <para>Writing <c>run</c> blocks on ksmd's mutex until its current batch ends (with <c>sleep_millisecs=0</c> ksmd
/// may take the mutex again first: a stop often waits two scans), so <see cref="Stop"/> returns with ksmd idle at a
/// full-scan boundary and the next <see cref="RunFullScans"/> starts from the first page.</para>
/// </remarks>
internal sealed class LinuxKsmdScan : IDisposable
{
    private readonly LinuxKsmKnobs _knobs;
    private readonly nint _address;
    private readonly nuint _length;
    private bool _disposed;

    /// <summary>Maps and fills <paramref name="pages"/> pages, marks them mergeable and sets the knobs (ksmd stopped).</summary>
    public LinuxKsmdScan(int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        Pages = pages;
        _knobs = LinuxKsmKnobs.Save();
        try
        {
            LinuxKsm.Write("run", 0);
            _length = (nuint)pages * KsmBenchPages.PageSize;
            _address = LinuxMemory.MapAnonymous(_length, LinuxMemory.ProtRead | LinuxMemory.ProtWrite);
            LinuxKsm.Madvise(_address, _length, LinuxKsm.MadvNoHugePage);
            unsafe
            {
                // unsafe: the pages are the kernel mapping just made, filled in place.
                for (var page = 0; page < pages; page++)
                {
                    KsmBenchPages.Fill(new Span<byte>((byte*)_address + ((long)page * KsmBenchPages.PageSize), KsmBenchPages.PageSize), page);
                }
            }

            LinuxKsm.Madvise(_address, _length, LinuxKsm.MadvMergeable);
            _knobs.TrySet("advisor_mode", "none");
            _knobs.TrySet("smart_scan", "0");
            LinuxKsm.Write("pages_to_scan", 4L * pages);
            LinuxKsm.Write("sleep_millisecs", 0);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The mergeable pages this process offers ksmd.</summary>
    public int Pages { get; }

    /// <summary>Pages ksmd scanned during the <see cref="RunFullScans"/> calls so far (<c>pages_scanned</c>'s growth).</summary>
    public long PagesScanned { get; private set; }

    /// <summary>Completed <see cref="RunFullScans"/> calls.</summary>
    public int Runs { get; private set; }

    /// <summary>Wall time of the last <see cref="RunFullScans"/>, from <c>run=1</c> to seeing the last scan end.</summary>
    public TimeSpan LastElapsed { get; private set; }

    /// <summary>
    /// Starts ksmd and returns once <c>full_scans</c> has grown by <paramref name="scans"/>; ksmd keeps running (into
    /// the next scan) until <see cref="Stop"/>. On any failure ksmd is stopped before the exception leaves.
    /// </summary>
    public long RunFullScans(int scans, TimeSpan timeout)
    {
        var start = LinuxKsm.ReadNumber("full_scans");
        var scannedBefore = LinuxKsm.ReadNumber("pages_scanned");
        var clock = Stopwatch.StartNew();
        try
        {
            LinuxKsm.Write("run", 1);
            long now;
            while ((now = LinuxKsm.ReadNumber("full_scans")) < start + scans)
            {
                if (clock.Elapsed > timeout)
                {
                    throw new TimeoutException($"ksmd finished {now - start} of {scans} full scans of {Pages} pages in {timeout}");
                }

                // 1 ms polls: the second core stays ksmd's; a scan of the benchmark's pages takes tens of milliseconds.
                Thread.Sleep(1);
            }

            LastElapsed = clock.Elapsed;
            PagesScanned += LinuxKsm.ReadNumber("pages_scanned") - scannedBefore;
            Runs++;
            return now - start;
        }
        catch
        {
            Stop();
            throw;
        }
    }

    /// <summary>Stops ksmd; returns once it has finished the scan it was in (see the remarks).</summary>
    public void Stop() => LinuxKsm.Write("run", 0);

    /// <summary>Stops ksmd, unmaps the pages and restores every knob.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            Stop();
            if (_address != 0)
            {
                LinuxMemory.Unmap(_address, _length);
            }
        }
        finally
        {
            _knobs.Dispose();
        }
    }
}

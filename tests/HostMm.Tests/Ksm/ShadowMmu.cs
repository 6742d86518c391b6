using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>
/// A minimal secondary MMU for one process, as KVM's protocol has it: a map of host pages to frames filled through
/// get-user-pages with the invalidation-sequence retry, emptied over every started range, and read and written directly
/// in host RAM (as a guest does through its sptes) while the entry lives. It holds no page references, so the host's
/// notifier order alone keeps its accesses coherent. Counts change_pte calls that found an entry (legacy mode).
/// </summary>
internal sealed class ShadowMmu : IMmuNotifier
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, (Pfn Pfn, bool Writable)> _entries = [];
    private readonly Mm _mm;
    private long _sequence;
    private int _inProgress;
    private long _changePteHits;
    private long _changePteMisses;

    public ShadowMmu(Mm mm)
    {
        _mm = mm;
        mm.Notifiers.Register(this);
    }

    /// <summary>change_pte calls that found a live entry to retarget.</summary>
    public long ChangePteHits => Interlocked.Read(ref _changePteHits);

    /// <summary>change_pte calls that found nothing (the entry was zapped by the start before it).</summary>
    public long ChangePteMisses => Interlocked.Read(ref _changePteMisses);

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        lock (_lock)
        {
            _inProgress++;
            for (var page = range.Start; page < range.End && _entries.Count != 0; page += Paging.PageSize)
            {
                _entries.Remove(page.Value);
            }
        }

        return true;
    }

    public void InvalidateRangeEnd(in NotifierRange range)
    {
        lock (_lock)
        {
            _sequence++;
            _inProgress--;
        }
    }

    public void ChangePte(IMm mm, Hva address, HostPte pte)
    {
        lock (_lock)
        {
            if (_entries.ContainsKey(address.Value))
            {
                _entries[address.Value] = (pte.Pfn, pte.IsWritable);
                Interlocked.Increment(ref _changePteHits);
            }
            else
            {
                Interlocked.Increment(ref _changePteMisses);
            }
        }
    }

    public void Release(IMm mm)
    {
        lock (_lock)
        {
            _entries.Clear();
        }
    }

    /// <summary>Writes a whole page through the shadow mapping, faulting it in (write) first.</summary>
    public void Write(Hva page, ReadOnlySpan<byte> data) => Access(page, write: true, data, default);

    /// <summary>Reads a whole page through the shadow mapping, faulting it in (read) first.</summary>
    public void Read(Hva page, Span<byte> destination) => Access(page, write: false, default, destination);

    private void Access(Hva page, bool write, ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var memory = _mm.Host.Memory;
        while (true)
        {
            lock (_lock)
            {
                if (_entries.TryGetValue(page.Value, out var entry) && (entry.Writable || !write))
                {
                    if (write)
                    {
                        data.CopyTo(memory.FrameBytes(entry.Pfn));
                    }
                    else
                    {
                        memory.FrameBytes(entry.Pfn).CopyTo(destination);
                    }

                    return;
                }
            }

            long sequence;
            lock (_lock)
            {
                sequence = _sequence;
            }

            var gup = _mm.GetUserPages(page, write);
            if (!gup.Succeeded)
            {
                throw new InvalidOperationException($"{_mm}: shadow fault at {page} failed: {gup.Fault}");
            }

            try
            {
                lock (_lock)
                {
                    if (_inProgress == 0 && _sequence == sequence)
                    {
                        // Writable only after a write fault, which dirtied the host PTE: a write through an entry made
                        // writable by a read fault would leave the host PTE clean, and reclaim would drop the data.
                        _entries[page.Value] = (gup.Pfn, write && gup.Writable);
                    }
                }
            }
            finally
            {
                _mm.ReleasePage(gup.Pfn);
            }
        }
    }
}

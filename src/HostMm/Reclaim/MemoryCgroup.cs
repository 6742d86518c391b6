using System.Globalization;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// A memory limit shared by the processes placed in it, in the style of a cgroup v2 memory controller: every
/// anonymous page and swap-cache page a member allocates is charged here (<c>memory.current</c>), a charge above
/// <see cref="MaxPages"/> (<c>memory.max</c>) is first answered by reclaim from this group's own LRU lists on the
/// allocating thread, and by an out-of-memory failure when that frees nothing.
/// </summary>
/// <remarks>
/// Charges are atomics (no lock); a charge never takes usage above the limit. The group keeps no frame list of its
/// own: its pages are on the <see cref="Lruvec"/>s of (node, group). The root group (<see cref="Reclaimer.Root"/>)
/// has no limit unless one is set.
/// </remarks>
public sealed class MemoryCgroup
{
    /// <summary>The <see cref="MaxPages"/> of a group without a limit.</summary>
    public const long Unlimited = long.MaxValue;

    private long _maxPages;
    private long _usage;
    private long _peak;
    private long _maxEvents;
    private long _oomEvents;

    internal MemoryCgroup(int id, string name, long maxPages)
    {
        Id = id;
        Name = name;
        _maxPages = maxPages;
    }

    /// <summary>The group's id (1 for the root): what a charged frame records.</summary>
    public int Id { get; }

    /// <summary>The group's name, for reports.</summary>
    public string Name { get; }

    /// <summary>
    /// The limit in pages (<c>memory.max</c>); <see cref="Unlimited"/> for none. Lowering it below the usage does not
    /// reclaim by itself: the next charge and the background reclaimer do.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to 0 or less.</exception>
    public long MaxPages
    {
        get => Volatile.Read(ref _maxPages);
        set
        {
            if (value <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"cgroup '{Name}': memory.max must be at least one page");
            }

            Volatile.Write(ref _maxPages, value);
        }
    }

    /// <summary>Pages charged now (<c>memory.current</c>): resident anonymous pages and swap-cache pages.</summary>
    public long UsagePages => Volatile.Read(ref _usage);

    /// <summary>Pages the group may still charge before it reaches its limit (0 when at or above it).</summary>
    public long HeadroomPages => Math.Max(0, MaxPages - UsagePages);

    /// <summary>A snapshot of the group's counters.</summary>
    public MemoryCgroupStats Stats => new()
    {
        UsagePages = UsagePages,
        MaxPages = MaxPages,
        PeakPages = Volatile.Read(ref _peak),
        MaxEvents = Volatile.Read(ref _maxEvents),
        OomEvents = Volatile.Read(ref _oomEvents),
    };

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"cgroup {Id} '{Name}' {UsagePages}/{(MaxPages == Unlimited ? "max" : MaxPages.ToString(CultureInfo.InvariantCulture))} pages");

    /// <summary>Charges <paramref name="pages"/> unless that would exceed the limit (then counts a <c>max</c> event).</summary>
    internal bool TryCharge(long pages)
    {
        while (true)
        {
            var usage = Volatile.Read(ref _usage);
            if (usage + pages > MaxPages)
            {
                Interlocked.Increment(ref _maxEvents);
                return false;
            }

            if (Interlocked.CompareExchange(ref _usage, usage + pages, usage) == usage)
            {
                var now = usage + pages;
                var peak = Volatile.Read(ref _peak);
                while (now > peak && Interlocked.CompareExchange(ref _peak, now, peak) != peak)
                {
                    peak = Volatile.Read(ref _peak);
                }

                return true;
            }
        }
    }

    /// <summary>Returns <paramref name="pages"/> of charge.</summary>
    internal void Uncharge(long pages)
    {
        if (Interlocked.Add(ref _usage, -pages) < 0)
        {
            throw new InvalidOperationException($"{this}: uncharged below zero: a frame was uncharged twice or never charged");
        }
    }

    /// <summary>Counts an out-of-memory failure of a charge that reclaim could not make room for.</summary>
    internal void CountOom() => Interlocked.Increment(ref _oomEvents);
}

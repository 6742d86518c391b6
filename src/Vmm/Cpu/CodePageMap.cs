using System.Runtime.CompilerServices;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.Notifier;
using Hypervisor.GuestMmu.Walker;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// Which guest-physical pages hold decoded code, shared by every vCPU of a VM (Bochs' page write stamps): a
/// per-gfn watch flag and version. A store to a watched page bumps its version and unwatches it, so every
/// vCPU's cached blocks of that page stop matching; decoding the page again watches it again.
/// </summary>
/// <remarks>
/// Ordering: a decoder reads the version, then watches, then reads the code bytes, and tags its blocks with
/// the version it read. A store that lands after the watch bumps the version, so a block decoded from bytes
/// older than that store never matches again. Lock-free; every member is safe from any vCPU thread.
/// </remarks>
public sealed class CodePageMap : IWriteMonitor
{
    private readonly int[] _versions;
    private readonly int[] _watched;
    private long _invalidations;

    /// <summary>Creates the map for guest-physical pages below <paramref name="guestPhysicalBytes"/>.</summary>
    public CodePageMap(ulong guestPhysicalBytes)
    {
        var pages = checked((int)((guestPhysicalBytes + Paging.PageSize - 1) >> Paging.PageShift));
        _versions = new int[pages];
        _watched = new int[pages];
    }

    /// <summary>Stores that hit a watched page.</summary>
    public long Invalidations => Interlocked.Read(ref _invalidations);

    /// <summary>The current version of <paramref name="gfn"/> (0 for pages outside the map).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int VersionOf(Gfn gfn) => gfn.Value < (ulong)_versions.Length ? Volatile.Read(ref _versions[gfn.Value]) : 0;

    /// <summary>Starts watching <paramref name="gfn"/>; true when it was not watched (the caller must drop cached TLB write entries).</summary>
    public bool Watch(Gfn gfn) => gfn.Value < (ulong)_watched.Length && Interlocked.Exchange(ref _watched[gfn.Value], 1) == 0;

    /// <inheritdoc />
    public bool IsWatched(Gfn gfn) => gfn.Value < (ulong)_watched.Length && Volatile.Read(ref _watched[gfn.Value]) != 0;

    /// <inheritdoc />
    public void OnWatchedWrite(Gpa gpa)
    {
        var gfn = gpa.Gfn.Value;
        if (gfn >= (ulong)_watched.Length || Interlocked.Exchange(ref _watched[gfn], 0) == 0)
        {
            return;
        }

        Interlocked.Increment(ref _versions[gfn]);
        Interlocked.Increment(ref _invalidations);
    }
}

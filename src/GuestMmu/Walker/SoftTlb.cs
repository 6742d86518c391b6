namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// A vCPU's software TLB, after QEMU's <c>CPUTLB</c>: per <see cref="TlbAccessClass"/>, a direct-mapped table of
/// <see cref="EntriesPerClass"/> 4 KiB entries indexed by gva page, each holding read/write/execute comparators
/// and the host addend (host address − gva), so a hit is one load, one compare and one add. Large guest pages
/// are cached per 4 KiB (host frames are only contiguous per 4 KiB) and their coverage is tracked for INVLPG.
/// Owned by one vCPU thread: every member runs on it (the shootdown callback runs there too).
/// </summary>
/// <remarks>
/// <para>Generation stamps make flushes O(1): a comparator embeds the generation current when it was filled in
/// its low 12 bits — non-global entries the local generation (1…0x7FF, bit 11 clear), global entries the global
/// generation (0x801…0xFFE, bit 11 set). <see cref="FlushAll"/> bumps both, <see cref="FlushNonGlobal"/> only the
/// local one, and every older comparator stops matching. Invariant: no comparator in the table carries a
/// generation that is not current unless it is older than every generation handed out since the table was last
/// rewritten — on a wrap-around the affected entries are rewritten to <see cref="InvalidTag"/> before the counter
/// restarts, so a stale comparator can never match again.</para>
/// <para>Write comparators are set only when the translation allowed writes without another walk (guest PTE
/// dirty, EPT spte writable and dirty): a page whose spte is read-only never gets a write hit.</para>
/// </remarks>
public sealed unsafe class SoftTlb // unsafe: hits return host pointers computed from the addend.
{
    /// <summary>Entries per access class (a power of two).</summary>
    public const int EntriesPerClass = 1 << IndexBits;

    /// <summary>A comparator that never matches (its generation bits 0xFFF are never current).</summary>
    internal const ulong InvalidTag = ulong.MaxValue;

    private const int IndexBits = 12;
    private const ulong IndexMask = EntriesPerClass - 1;
    private const int Classes = 3;
    private const ulong PageMask = ~Paging.PageOffsetMask;
    private const ulong GlobalTagBit = 0x800;
    private const ulong FirstLocal = 1;
    private const ulong LastLocal = 0x7FF;
    private const ulong FirstGlobal = 0x801;
    private const ulong LastGlobal = 0xFFE;

    private readonly TlbEntry[] _entries = new TlbEntry[Classes * EntriesPerClass];

    // The gpa page of each entry, parallel to _entries (kept out of TlbEntry so a data hit touches 32 bytes);
    // read only by TryLookupFetch, which the interpreter uses to key its decode cache.
    private readonly ulong[] _gpaPages = new ulong[Classes * EntriesPerClass];
    private ulong _localGeneration = FirstLocal;
    private ulong _globalGeneration = FirstGlobal;
    private int _class;

    // Coverage of every large page filled since the last full flush (QEMU's large_page_addr/mask); mask 0 with
    // base 1 matches nothing.
    private ulong _largeBase = 1;
    private ulong _largeMask;

    // Counters: written by the owning vCPU thread only.
    private long _hits;
    private long _misses;
    private long _fills;
    private long _fullFlushes;
    private long _nonGlobalFlushes;
    private long _pageFlushes;
    private long _largePageFlushes;
    private long _wraps;

    /// <summary>Creates an empty TLB.</summary>
    public SoftTlb()
    {
        _entries.AsSpan().Fill(new TlbEntry { TagRead = InvalidTag, TagWrite = InvalidTag, TagExecute = InvalidTag });
    }

    /// <summary>The class of explicit accesses (set from the CPL and RFLAGS.AC; implicit accesses always use <see cref="TlbAccessClass.Supervisor"/>).</summary>
    public TlbAccessClass AccessClass
    {
        get => (TlbAccessClass)_class;
        set => _class = (int)value;
    }

    /// <summary>A snapshot of the counters.</summary>
    public TlbStats Stats => new()
    {
        Hits = Volatile.Read(ref _hits),
        Misses = Volatile.Read(ref _misses),
        Fills = Volatile.Read(ref _fills),
        FullFlushes = Volatile.Read(ref _fullFlushes),
        NonGlobalFlushes = Volatile.Read(ref _nonGlobalFlushes),
        PageFlushes = Volatile.Read(ref _pageFlushes),
        LargePageFlushes = Volatile.Read(ref _largePageFlushes),
        GenerationWraps = Volatile.Read(ref _wraps),
    };

    /// <summary>The class that <paramref name="ctx"/> gives explicit accesses.</summary>
    public static TlbAccessClass ClassOf(in PagingContext ctx) =>
        ctx.Cpl == 3 ? TlbAccessClass.User
        : ctx.Smap && ctx.AlignmentCheck ? TlbAccessClass.SupervisorAc
        : TlbAccessClass.Supervisor;

    /// <summary>The class an access of kind <paramref name="access"/> uses under <paramref name="ctx"/>.</summary>
    public static TlbAccessClass ClassOf(in PagingContext ctx, GuestAccess access) =>
        (access & GuestAccess.ImplicitSupervisor) != 0 ? TlbAccessClass.Supervisor : ClassOf(ctx);

    /// <summary>
    /// The fast path: the host address of <paramref name="gva"/> when a live entry of the current class allows
    /// <paramref name="access"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="access"/> combines Write and Execute.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookup(Gva gva, GuestAccess access, out byte* host)
    {
        var kind = (int)(access & (GuestAccess.Write | GuestAccess.Execute));
        if (kind == 3)
        {
            ThrowBadAccess(access);
        }

        var cls = (access & GuestAccess.ImplicitSupervisor) != 0 ? 0 : _class;
        ref var entry = ref Unsafe.Add(
            ref MemoryMarshal.GetArrayDataReference(_entries), (cls << IndexBits) | (int)((gva.Value >> Paging.PageShift) & IndexMask));
        var tag = Unsafe.Add(ref entry.TagRead, kind);
        var generation = (tag & GlobalTagBit) != 0 ? _globalGeneration : _localGeneration;
        if (tag == ((gva.Value & PageMask) | generation))
        {
            _hits++;
            host = (byte*)(entry.Addend + (nint)gva.Value);
            return true;
        }

        _misses++;
        host = null;
        return false;
    }

    /// <summary>
    /// <see cref="TryLookup"/> for an instruction fetch that also returns the guest-physical address of
    /// <paramref name="gva"/> (the interpreter keys its decoded-instruction cache by it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookupFetch(Gva gva, out byte* host, out Gpa gpa)
    {
        var index = (_class << IndexBits) | (int)((gva.Value >> Paging.PageShift) & IndexMask);
        ref var entry = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), index);
        var tag = entry.TagExecute;
        var generation = (tag & GlobalTagBit) != 0 ? _globalGeneration : _localGeneration;
        if (tag == ((gva.Value & PageMask) | generation))
        {
            _hits++;
            host = (byte*)(entry.Addend + (nint)gva.Value);
            gpa = new Gpa(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_gpaPages), index) | (gva.Value & Paging.PageOffsetMask));
            return true;
        }

        _misses++;
        host = null;
        gpa = default;
        return false;
    }

    /// <summary>
    /// Caches a successful translation made for <paramref name="access"/> (whose class picks the table):
    /// each kind its <see cref="TranslationResult.Permissions"/> allow, global when <see cref="TranslationResult.Global"/>.
    /// Does nothing for a result that is not <see cref="TranslationStatus.Ok"/>.
    /// </summary>
    public void Fill(in TranslationResult result, GuestAccess access)
    {
        if (!result.IsOk)
        {
            return;
        }

        var cls = (access & GuestAccess.ImplicitSupervisor) != 0 ? 0 : _class;
        var gva = result.Gva.Value;
        var tag = (gva & PageMask) | (result.Global ? _globalGeneration : _localGeneration);
        var permissions = result.Permissions;
        var index = (cls << IndexBits) | (int)((gva >> Paging.PageShift) & IndexMask);
        _gpaPages[index] = result.Gpa.Value & PageMask;
        ref var entry = ref _entries[index];
        entry.TagRead = (permissions & PagePermissions.Read) != 0 ? tag : InvalidTag;
        entry.TagWrite = (permissions & PagePermissions.Write) != 0 ? tag : InvalidTag;
        entry.TagExecute = (permissions & PagePermissions.Execute) != 0 ? tag : InvalidTag;
        entry.Addend = result.HostAddress - (nint)gva;
        _fills++;
        if (result.PageSize > Paging.PageSize)
        {
            AddLargePage(gva, result.PageSize);
        }
    }

    /// <summary>
    /// Bumped by every flush of any kind. Invariant: while it is unchanged, every translation the TLB answered
    /// is still the one a walk would give (or a stale one the architecture allows), so callers may cache
    /// derived facts — the interpreter's chained successor blocks — stamped with it.
    /// </summary>
    public long FlushEpoch { get; private set; }

    /// <summary>Drops every entry in O(1) (a shootdown, or a change of paging controls).</summary>
    public void FlushAll()
    {
        FlushEpoch++;
        _fullFlushes++;
        _largeBase = 1;
        _largeMask = 0;
        if (_localGeneration == LastLocal || _globalGeneration == LastGlobal)
        {
            _wraps++;
            foreach (ref var entry in _entries.AsSpan())
            {
                entry.TagRead = entry.TagWrite = entry.TagExecute = InvalidTag;
            }

            _localGeneration = FirstLocal;
            _globalGeneration = FirstGlobal;
            return;
        }

        _localGeneration++;
        _globalGeneration++;
    }

    /// <summary>Drops every non-global entry in O(1) (a CR3 write; global entries were only filled with CR4.PGE set).</summary>
    public void FlushNonGlobal()
    {
        FlushEpoch++;
        _nonGlobalFlushes++;
        if (_localGeneration != LastLocal)
        {
            _localGeneration++;
            return;
        }

        // Wrap-around: rewrite the non-global comparators before local generations are reused.
        _wraps++;
        foreach (ref var entry in _entries.AsSpan())
        {
            entry.TagRead = Local(entry.TagRead);
            entry.TagWrite = Local(entry.TagWrite);
            entry.TagExecute = Local(entry.TagExecute);
        }

        _localGeneration = FirstLocal;

        static ulong Local(ulong tag) => (tag & GlobalTagBit) != 0 ? tag : InvalidTag;
    }

    /// <summary>
    /// Drops the entries of the 4 KiB page holding <paramref name="gva"/> in every class, global ones included
    /// (INVLPG). When a large page cached since the last full flush may cover it, flushes everything, as QEMU does.
    /// </summary>
    public void FlushPage(Gva gva)
    {
        FlushEpoch++;
        _pageFlushes++;
        if ((gva.Value & _largeMask) == _largeBase)
        {
            _largePageFlushes++;
            FlushAll();
            return;
        }

        var page = gva.Value & PageMask;
        var index = (int)((gva.Value >> Paging.PageShift) & IndexMask);
        for (var cls = 0; cls < Classes; cls++)
        {
            ref var entry = ref _entries[(cls << IndexBits) | index];
            if ((entry.TagRead & PageMask) == page || (entry.TagWrite & PageMask) == page || (entry.TagExecute & PageMask) == page)
            {
                entry.TagRead = entry.TagWrite = entry.TagExecute = InvalidTag;
            }
        }
    }

    private void AddLargePage(ulong gva, ulong size)
    {
        var mask = ~(size - 1);
        if (_largeMask == 0)
        {
            _largeMask = mask;
            _largeBase = gva & mask;
            return;
        }

        // Widen the tracked range until it covers the old range and the new page (QEMU's tlb_add_large_page).
        mask &= _largeMask;
        while (((_largeBase ^ gva) & mask) != 0)
        {
            mask <<= 1;
        }

        _largeMask = mask;
        _largeBase &= mask;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadAccess(GuestAccess access) =>
        throw new ArgumentException($"{access} is not one access kind: use exactly one of Read, Write or Execute", nameof(access));
}

namespace Hypervisor.HostMm;

/// <summary>
/// One notifier invalidation of a host range, from its start to its end (Linux's
/// <c>mmu_notifier_invalidate_range_start</c> … <c>_end</c> around a PTE change). Begin it with
/// <c>using var invalidation = Invalidation.Begin(mm, start, end, notifierEvent);</c> (or a <c>using</c>
/// block when work must follow the end): the end is sent exactly once when the scope is disposed, on every
/// path out of the body, exceptions included, and never when the start did not succeed. Every host
/// operation that changes PTEs a secondary MMU may map goes through this type; none calls the chain's
/// start and end by hand.
/// </summary>
/// <remarks>
/// <para>Where it may be begun: with the mm's mmap lock held (munmap, mprotect, mremap, madvise, fork, exit,
/// the copy-on-write fault) or with a reverse-map lock held instead (reclaim's try_to_unmap, KSM's
/// write_protect_page and replace_page, migration, THP split), and with the frame lock if the caller has
/// one. <b>Never under a page-table lock</b>: subscribers may block in start and end (lock order: mmap lock
/// or reverse-map lock → frame lock → scope → page-table lock → a secondary MMU's lock). Page-table locks are
/// taken inside the scope, around each PTE change, and dropped before it ends.</para>
/// <para>The scope holds the chain's read-side section from start to end, so the body must not register or
/// unregister notifiers on the same mm. A page a secondary MMU could map is freed only after the start
/// returned (usually after the end and the TLB flush: see <c>reference/mmu-notifier.md</c> §3).</para>
/// <para>A <c>ref struct</c> that owns the started <see cref="NotifierRange"/> by value: no allocation per
/// invalidation. Do not copy it; a copy would send the end a second time.</para>
/// </remarks>
internal ref struct Invalidation
{
    private NotifierRange _range;
    private MmuNotifierChain? _chain;

    // NotifierEra.NoRangeStartEnd only: no start was sent; the disposal sends the post-change invalidate, or hands it to
    // the zap's gather so that it follows the frees.
    private bool _postChange;
    private TlbGather? _gather;

    private Invalidation(MmuNotifierChain chain, scoped in NotifierRange range)
    {
        _range = range;
        _chain = chain;
    }

    /// <summary>
    /// True while the start succeeded and the end has not been sent yet. A scope from
    /// <see cref="BeginNonBlocking"/> whose start was refused is false from the outset: the body must then
    /// change nothing, and disposing it sends nothing.
    /// </summary>
    public readonly bool Started => _chain is not null;

    /// <summary>
    /// Sends a blockable start for <c>[start, end)</c> of <paramref name="mm"/> and returns the scope whose
    /// disposal sends the end. A blockable start cannot be refused: a subscriber that refuses it breaks the
    /// contract, the chain throws, and no end is owed.
    /// </summary>
    /// <param name="mm">The process whose page tables change.</param>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end.</param>
    /// <param name="notifierEvent">Why the range changes.</param>
    /// <param name="owner">The initiator, for migrate and exclusive events.</param>
    /// <exception cref="InvalidRangeException">The range is empty or unaligned.</exception>
    /// <exception cref="NotifierContractException">A subscriber refused the blockable start.</exception>
    public static Invalidation Begin(Mm mm, Hva start, Hva end, NotifierEvent notifierEvent, object? owner = null)
    {
        var range = new NotifierRange(mm, start, end, notifierEvent, blockable: true, owner);
        var chain = mm.Notifiers;
        if (chain.Era == NotifierEra.NoRangeStartEnd)
        {
            return PostChange(chain, in range, gather: null);
        }

        chain.InvalidateRangeStart(ref range);
        return new Invalidation(chain, in range);
    }

    /// <summary>
    /// <see cref="Begin(Mm, Hva, Hva, NotifierEvent, object?)"/> for a zap whose frames <paramref name="gather"/> frees
    /// after the end. Identical in today's era; under <see cref="NotifierEra.NoRangeStartEnd"/> the post-change
    /// invalidate goes to the gather and is sent after the frees, as the 2008 designs announced a zap.
    /// </summary>
    public static Invalidation Begin(Mm mm, Hva start, Hva end, NotifierEvent notifierEvent, TlbGather gather)
    {
        var chain = mm.Notifiers;
        if (chain.Era != NotifierEra.NoRangeStartEnd)
        {
            return Begin(mm, start, end, notifierEvent);
        }

        var range = new NotifierRange(mm, start, end, notifierEvent, blockable: true);
        return PostChange(chain, in range, gather);
    }

    /// <summary>
    /// Sends a non-blockable start (Linux's <c>mmu_notifier_invalidate_range_start_nonblock</c>, the OOM
    /// reaper's case): subscribers must not sleep, and one that would have to may refuse. Check
    /// <see cref="Started"/> before changing anything: when it is false the chain has already ended the
    /// subscribers that accepted, the caller must leave the range as it is (and retry later), and disposing
    /// the scope sends no end.
    /// </summary>
    /// <param name="mm">The process whose page tables change.</param>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end.</param>
    /// <param name="notifierEvent">Why the range changes.</param>
    /// <param name="owner">The initiator, for migrate and exclusive events.</param>
    /// <exception cref="InvalidRangeException">The range is empty or unaligned.</exception>
    public static Invalidation BeginNonBlocking(Mm mm, Hva start, Hva end, NotifierEvent notifierEvent, object? owner = null)
    {
        var range = new NotifierRange(mm, start, end, notifierEvent, blockable: false, owner);
        var chain = mm.Notifiers;
        if (chain.Era == NotifierEra.NoRangeStartEnd)
        {
            return PostChange(chain, in range, gather: null);
        }

        return chain.InvalidateRangeStart(ref range) ? new Invalidation(chain, in range) : default;
    }

    /// <summary>
    /// Sends the end if the start succeeded and the end was not sent yet; a second call does nothing. Under
    /// <see cref="NotifierEra.NoRangeStartEnd"/> sends the post-change invalidate instead (or leaves it to the gather).
    /// </summary>
    public void Dispose()
    {
        var chain = _chain;
        if (chain is null)
        {
            return;
        }

        _chain = null;
        if (!_postChange)
        {
            chain.InvalidateRangeEnd(ref _range);
        }
        else if (_gather is { } gather)
        {
            gather.DeferPostChangeInvalidate(in _range);
        }
        else
        {
            chain.InvalidateRange(ref _range);
        }
    }

    /// <summary>A scope of the 2008 era: no start now; the change is announced when the scope ends.</summary>
    private static Invalidation PostChange(MmuNotifierChain chain, scoped in NotifierRange range, TlbGather? gather) =>
        new(chain, in range) { _postChange = true, _gather = gather };
}

using System.Buffers;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The multi-gen LRU (<see cref="LruPolicy.MultiGen"/>, Linux's <c>lru_gen</c>): eviction from the oldest generation,
/// aging by a page-table walk of the cgroup's processes, and look-around from a young reverse-map hit. Both the walk and
/// the look-around clear the primary accessed bit and ask the secondary MMUs with <c>clear_young</c> (no flush), and —
/// as Linux does since 6.12 when a process has notifiers — ask about every present PTE, so a page used only by a guest
/// through its EPT counts as young.
/// </summary>
/// <remarks>
/// <para>Lock order for aging: <see cref="Lruvec.AgingLock"/> → a process's mmap lock (tried, never waited for) →
/// page-table lock → a secondary MMU's lock. Young frames are only collected under the page-table lock; they move to the
/// youngest generation afterwards under <see cref="Lruvec.Lock"/> (a leaf), after a re-check that they are still on
/// that lruvec's lists (they may have been isolated or freed in between; no reference is taken per page).</para>
/// </remarks>
public sealed partial class Reclaimer
{
    /// <summary>Neighbours on each side of a young PTE that look-around checks (Linux checks up to 64 in the same table).</summary>
    private const int LookAroundPages = 32;

    /// <summary>Young frames a walk collects before it stops to promote them (at least one PTE table's worth).</summary>
    private const int WalkBatch = 2 * HostPageTable.EntriesPerTable;

    private long _mglruAgings;
    private long _mglruWalkPromotions;
    private long _mglruLookAroundPromotions;
    private long _mglruTierProtections;

    private bool MultiGen => _options.Policy == LruPolicy.MultiGen;

    /// <summary>
    /// Ages every lruvec of <paramref name="cgroup"/> once (Linux's <c>try_to_inc_max_seq</c>): opens a new youngest
    /// generation, then walks the page tables of the cgroup's processes, clearing accessed bits and asking the secondary
    /// MMUs (<c>clear_young</c>), and moves every page found young into the new generation — except the pages of the
    /// generation that was the youngest until now, whose accessed bits may only be the fault's that put them there: their
    /// bits are cleared and they stay, one generation behind. Returns the pages promoted.
    /// </summary>
    /// <exception cref="InvalidOperationException">The host's policy is <see cref="LruPolicy.Classic"/>, which has no generations.</exception>
    public long AgeCgroup(MemoryCgroup cgroup)
    {
        ArgumentNullException.ThrowIfNull(cgroup);
        if (!MultiGen)
        {
            throw new InvalidOperationException($"{cgroup}: aging by generations needs LruPolicy.MultiGen; this host's policy is {_options.Policy}");
        }

        long promoted = 0;
        foreach (var lruvec in Volatile.Read(ref _lruvecs))
        {
            if (ReferenceEquals(lruvec.Cgroup, cgroup))
            {
                promoted += AgeLruvec(lruvec, lruvec.MaxSeq, walk: true);
            }
        }

        return promoted;
    }

    /// <summary>
    /// Linux's <c>evict_folios</c> loop for the anonymous generations: isolates batches from the oldest generation's
    /// tail and tries to free each page; a page referenced since it entered (its PTE accessed bit, found with
    /// <c>clear_young</c> through the reverse map, or a secondary MMU's young answer) is promoted to the youngest
    /// generation instead. When only <see cref="Lruvec.MinGenerations"/> remain, ages first (walking the page tables
    /// only when something was scanned since this call's previous aging). Stops after
    /// <paramref name="pages"/> are freed or twice the lists have been scanned.
    /// </summary>
    private long ShrinkLruvecMultiGen(Lruvec lruvec, long pages, ScanControl control)
    {
        long reclaimed = 0;
        long scanned = 0;
        var agings = 0;
        long scannedAtAging = -1;
        var limit = (2 * lruvec.Count) + pages + _options.BatchPages;
        Span<uint> batch = stackalloc uint[_options.BatchPages];
        Span<FolioOutcome> outcomes = stackalloc FolioOutcome[_options.BatchPages];
        while (reclaimed < pages && scanned < limit)
        {
            var count = IsolateOldest(lruvec, batch, control.IgnoreReferences, out var needsAging, out var seenMaxSeq);
            if (count == 0)
            {
                // A round that only ages is bounded: with every page young, each aging moves them all up a generation,
                // so after MaxGenerations rounds without a page to scan the lruvec is given up on for this call (the last
                // direct-reclaim rounds, which ignore references, never get here while a page is on the lists).
                if (!needsAging || agings >= Lruvec.MaxGenerations || lruvec.Count == 0)
                {
                    break;
                }

                // An aging that follows another with nothing scanned in between only opens a generation: the walk just
                // cleared every accessed bit, so a second one would find nothing young (it would only ask every
                // secondary MMU again); a page used since is still caught by eviction's reverse-map check.
                agings++;
                AgeLruvec(lruvec, seenMaxSeq, walk: scannedAtAging != scanned);
                scannedAtAging = scanned;
                continue;
            }

            Interlocked.Add(ref control.Direct ? ref _pgscanDirect : ref _pgscanKswapd, count);
            var freed = 0;
            ShrinkFolios(lruvec, batch[..count], control, outcomes[..count]);
            for (var i = 0; i < count; i++)
            {
                var pfn = new Pfn(batch[i]);
                switch (outcomes[i])
                {
                    case FolioOutcome.Reclaimed:
                        freed++;
                        break;
                    case FolioOutcome.Activate:
                        Interlocked.Increment(ref _pgactivate);
                        lruvec.AgeNonresident();
                        PutBack(pfn, LruList.Active);
                        break;
                    default:
                        PutBackKept(lruvec, pfn);
                        break;
                }
            }

            Interlocked.Add(ref control.Direct ? ref _pgstealDirect : ref _pgstealKswapd, freed);
            scanned += count;
            reclaimed += freed;
        }

        return reclaimed;
    }

    /// <summary>
    /// Takes up to <c>batch.Length</c> frames off the oldest generation's tail, each with one reference and
    /// <see cref="FrameFlags.Isolated"/>, after dropping empty old generations; frames of a tier the refault controller
    /// protects move up a generation instead (<see cref="SortOldestLocked"/>). Isolates nothing, with
    /// <paramref name="needsAging"/> set, when only <see cref="Lruvec.MinGenerations"/> remain: the two youngest are
    /// never evicted from — except by last-resort reclaim (<paramref name="force"/>, references ignored), which goes on to
    /// the younger generations when the older ones are empty, as the classic policy's last rounds take referenced pages (a falling
    /// scan priority: an allocation that swap can satisfy must not fail because another reclaimer keeps aging).
    /// <paramref name="seenMaxSeq"/> is the youngest sequence number seen, for <see cref="AgeLruvec"/>.
    /// </summary>
    private int IsolateOldest(Lruvec lruvec, Span<uint> batch, bool force, out bool needsAging, out long seenMaxSeq)
    {
        var count = 0;
        lock (lruvec.Lock)
        {
            lruvec.TryIncrementMinSeqLocked();
            seenMaxSeq = lruvec.MaxSeq;
            needsAging = !force && lruvec.Generations <= Lruvec.MinGenerations;
            if (needsAging)
            {
                return 0;
            }

            // From the oldest generation on, moving to the next only when nothing could be taken from this one (its
            // frames all being freed right now, or protected by their tier): never the two youngest, unless forced.
            // Last-resort reclaim protects no tier.
            var last = force ? lruvec.MaxSeq : lruvec.MaxSeq - Lruvec.MinGenerations;
            var looked = 0;
            if (!force)
            {
                SortOldestLocked(lruvec, lruvec.Tiers.TierIndex(), batch, ref count, ref looked);
            }

            for (var seq = lruvec.MinSeq; seq <= last && count == 0 && looked < batch.Length * 4; seq++)
            {
                IsolateFromTailLocked(lruvec, lruvec.GenerationTailLocked(seq), batch, ref count, ref looked);
            }

            // Counted before the lock goes (see Isolate): a frame is on a list or counted isolated, never neither.
            Interlocked.Add(ref _isolated, count);
        }

        return count;
    }

    /// <summary>
    /// The scan of the oldest generation's tail (Linux's <c>scan_folios</c> with <c>sort_folio</c> and
    /// <c>isolate_folio</c>): a frame whose tier is above <paramref name="tierIndex"/> (or a workingset frame with a full
    /// counter) is protected — moved to the head of the next generation with its reference counts spent, and counted to
    /// its tier — and any other frame whose reference can still be got is isolated into <paramref name="batch"/>, its
    /// counter zeroed unless <see cref="FrameFlags.Accessed"/> says it holds accesses. Stops when the batch is full or
    /// <c>4 × batch.Length</c> frames were looked at. Hold <see cref="Lruvec.Lock"/>, with more than
    /// <see cref="Lruvec.MinGenerations"/> generations.
    /// </summary>
    private void SortOldestLocked(Lruvec lruvec, int tierIndex, Span<uint> batch, ref int count, ref int looked)
    {
        var frames = _memory.FrameTable;
        var minSeq = lruvec.MinSeq;
        var index = lruvec.GenerationTailLocked(minSeq);
        while (index != FrameInfo.NoFrame && count < batch.Length && looked < batch.Length * 4)
        {
            looked++;
            ref var frame = ref frames[(int)index];
            var previous = frame.LruPrev;
            var flags = frame.Flags;
            if (LruTiers.IsProtected(flags, tierIndex))
            {
                lruvec.RemoveLocked(frames, index);
                frame.ClearFlags(FrameFlags.Accessed | FrameFlags.LruRefsMask);
                lruvec.AddToGenerationLocked(frames, index, minSeq + 1);
                if (!LruTiers.IsSaturated(flags))
                {
                    lruvec.Tiers.CountProtected(LruTiers.TierOf(flags));
                }

                Interlocked.Increment(ref _mglruTierProtections);
            }
            else if (_memory.TryGet(new Pfn(index)))
            {
                lruvec.RemoveLocked(frames, index);
                frame.SetFlags(FrameFlags.Isolated);
                if ((flags & FrameFlags.Accessed) == 0)
                {
                    frame.ClearFlags(FrameFlags.LruRefsMask);
                }

                batch[count++] = index;
            }

            index = previous;
        }
    }

    /// <summary>
    /// One access to <paramref name="pfn"/> through a reference — get-user-pages, Linux's FOLL_TOUCH and its
    /// <c>folio_mark_accessed</c>. Under the multi-gen LRU it counts towards the page's tier
    /// (<see cref="FrameInfo.IncrementLruRefs"/>); the classic policy ages through accessed bits only.
    /// </summary>
    internal void MarkAccessed(Pfn pfn)
    {
        if (!MultiGen)
        {
            return;
        }

        ref var frame = ref _memory.Frame(pfn);
        if (!frame.Has(FrameFlags.Unevictable))
        {
            frame.IncrementLruRefs();
        }
    }

    /// <summary>
    /// The multi-gen shadow of a page evicted from <paramref name="lruvec"/> (Linux's <c>lru_gen_eviction</c>): counts
    /// the page to its tier's evictions and records the oldest generation, the page's accesses and its workingset mark.
    /// </summary>
    private static ulong LruGenEviction(Lruvec lruvec, FrameFlags flags)
    {
        var refs = LruTiers.Refs(flags);
        var workingset = (flags & FrameFlags.Workingset) != 0;
        lruvec.Tiers.CountEvicted(LruTiers.TierFromRefs(refs, workingset));
        return ShadowEntry.MakeGenerational(lruvec.Index, lruvec.MinSeq, refs, workingset);
    }

    /// <summary>
    /// Linux's <c>lru_gen_refault</c> for the page read into <paramref name="pfn"/>: counts <c>workingset_refault_anon</c>
    /// when the shadow's lruvec is the page's; a refault within <see cref="Lruvec.MaxGenerations"/> generations of the
    /// eviction is recent — counted to its tier's refaults and, the swap-in running inside a fault, as
    /// <c>workingset_activate_anon</c>; a workingset page gets its mark back (<c>workingset_restore_anon</c>), any other
    /// its reference counter. True for a recent refault.
    /// </summary>
    private bool LruGenRefault(ulong shadow, Pfn pfn)
    {
        var lruvecs = Volatile.Read(ref _lruvecs);
        var index = ShadowEntry.LruvecOf(shadow);
        ref var frame = ref _memory.Frame(pfn);
        if (index >= lruvecs.Length || !ReferenceEquals(lruvecs[index], LruvecOf(ref frame)))
        {
            return false;
        }

        var lruvec = lruvecs[index];
        Interlocked.Increment(ref _workingsetRefault);
        if (!ShadowEntry.IsRecentGeneration(shadow, lruvec.MaxSeq, Lruvec.MaxGenerations))
        {
            return false;
        }

        var refs = ShadowEntry.RefsOf(shadow);
        var workingset = ShadowEntry.WasWorkingset(shadow);
        lruvec.Tiers.CountRefaulted(LruTiers.TierFromRefs(refs, workingset));
        Interlocked.Increment(ref _workingsetActivate);
        if (workingset)
        {
            frame.SetFlags(FrameFlags.Workingset);
            Interlocked.Increment(ref _workingsetRestore);
        }
        else
        {
            frame.ReplaceFlags(FrameFlags.LruRefsMask, (FrameFlags)((uint)(refs - 1) << FrameInfo.LruRefsShift));
        }

        return true;
    }

    /// <summary>
    /// Returns a page eviction could not free now (page lock busy, a mapping's process busy, references held) to the
    /// second-oldest generation, and drops the isolation reference: back in the oldest it would be isolated again at
    /// once, and a small oldest generation of such pages would keep min_seq — and every page behind it — from moving.
    /// </summary>
    private void PutBackKept(Lruvec lruvec, Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        lock (lruvec.Lock)
        {
            frame.ClearFlags(FrameFlags.Isolated);
            var seq = lruvec.Generations > Lruvec.MinGenerations ? lruvec.MinSeq + 1 : lruvec.MinSeq;
            lruvec.AddToGenerationLocked(_memory.FrameTable, (uint)pfn.Value, seq);
        }

        Interlocked.Decrement(ref _isolated);
        _memory.Put(pfn);
    }

    /// <summary>
    /// One aging of <paramref name="lruvec"/>: unless another thread already opened a generation after
    /// <paramref name="seenMaxSeq"/>, opens a new youngest one and (with <paramref name="walk"/>) walks the page tables of
    /// the cgroup's processes, promoting the young pages of this lruvec into it. Returns the pages promoted.
    /// </summary>
    private long AgeLruvec(Lruvec lruvec, long seenMaxSeq, bool walk)
    {
        lock (lruvec.AgingLock)
        {
            lock (lruvec.Lock)
            {
                if (lruvec.MaxSeq != seenMaxSeq)
                {
                    return 0; // aged by someone else meanwhile
                }

                lruvec.IncrementMaxSeqLocked(_memory.FrameTable);
            }

            Interlocked.Increment(ref _mglruAgings);
            return walk ? WalkCgroupMms(lruvec) : 0;
        }
    }

    /// <summary>
    /// The aging walk (Linux's <c>walk_mm</c> over the memcg's mm list): every VMA of every live process of the lruvec's
    /// cgroup whose mmap lock can be taken without waiting, one PTE table at a time, stopping to promote when the batch
    /// buffer cannot take another table.
    /// </summary>
    private long WalkCgroupMms(Lruvec lruvec)
    {
        var buffer = ArrayPool<uint>.Shared.Rent(WalkBatch);
        var secondary = ArrayPool<ulong>.Shared.Rent(AgingVisitor.BitmapWords);
        long promoted = 0;
        long queries = 0;
        long hits = 0;
        try
        {
            foreach (var mm in _host.Mms)
            {
                if (!ReferenceEquals(mm.Cgroup, lruvec.Cgroup) || !mm.TryEnterRmapRead(out var taken))
                {
                    continue;
                }

                try
                {
                    var asksSecondary = mm.Notifiers.SubscriberCount > 0;
                    foreach (var vma in mm.VmasLocked)
                    {
                        var address = vma.Start;
                        while (address < vma.End)
                        {
                            var visitor = new AgingVisitor(this, mm, lruvec, buffer, secondary, asksSecondary, aging: true);
                            mm.PageTable.Walk(address, vma.End, allocate: false, ref visitor);
                            queries += visitor.Queries;
                            hits += visitor.Hits;
                            promoted += PromoteBatch(lruvec, buffer.AsSpan(0, visitor.Count));
                            if (visitor.ResumeAt is not { } resume)
                            {
                                break;
                            }

                            address = resume;
                        }
                    }
                }
                finally
                {
                    if (taken)
                    {
                        mm.ExitRmapRead();
                    }
                }
            }
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(buffer);
            ArrayPool<ulong>.Shared.Return(secondary);
        }

        Interlocked.Add(ref _youngQueries, queries);
        Interlocked.Add(ref _youngHits, hits);
        Interlocked.Add(ref _mglruWalkPromotions, promoted);
        return promoted;
    }

    /// <summary>
    /// Linux's <c>lru_gen_look_around</c>, after the reverse map found <paramref name="address"/> young in
    /// <paramref name="mm"/>: up to <see cref="LookAroundPages"/> PTEs on each side, within the same PTE table and VMA,
    /// are aged the same way (accessed bit cleared, <c>clear_young</c> asked) and the young ones among this lruvec's
    /// pages are promoted. Call with the mmap lock held for read and no page-table lock.
    /// </summary>
    private void LookAround(Mm mm, Hva address, Lruvec lruvec)
    {
        var vma = mm.VmasLocked.Find(address);
        if (vma is null)
        {
            return;
        }

        const ulong tableSpan = HostPageTable.EntriesPerTable * Paging.PageSize;
        var tableStart = address.Value & ~(tableSpan - 1);
        var span = LookAroundPages * Paging.PageSize;
        var start = Math.Max(Math.Max(vma.Start.Value, tableStart), address.Value >= span ? address.Value - span : 0);
        var end = Math.Min(Math.Min(vma.End.Value, tableStart + tableSpan), address.Value + Paging.PageSize + span);
        if (end - start <= Paging.PageSize)
        {
            return;
        }

        var buffer = ArrayPool<uint>.Shared.Rent((2 * LookAroundPages) + 1);
        var secondary = ArrayPool<ulong>.Shared.Rent(AgingVisitor.BitmapWords);
        try
        {
            var visitor = new AgingVisitor(this, mm, lruvec, buffer, secondary, mm.Notifiers.SubscriberCount > 0, aging: false, skip: address);
            mm.PageTable.Walk(new Hva(start), new Hva(end), allocate: false, ref visitor);
            Interlocked.Add(ref _youngQueries, visitor.Queries);
            Interlocked.Add(ref _youngHits, visitor.Hits);
            Interlocked.Add(ref _mglruLookAroundPromotions, PromoteBatch(lruvec, buffer.AsSpan(0, visitor.Count)));
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(buffer);
            ArrayPool<ulong>.Shared.Return(secondary);
        }
    }

    /// <summary>
    /// Moves each frame of <paramref name="pfns"/> that is still on one of <paramref name="lruvec"/>'s generation lists
    /// to its youngest generation. Returns how many moved.
    /// </summary>
    private long PromoteBatch(Lruvec lruvec, ReadOnlySpan<uint> pfns)
    {
        if (pfns.IsEmpty)
        {
            return 0;
        }

        var frames = _memory.FrameTable;
        long promoted = 0;
        lock (lruvec.Lock)
        {
            foreach (var index in pfns)
            {
                // Lru is read before the charge and node: a frame freed and recharged elsewhere since the walk sets its
                // new charge before its new lruvec sets Lru, so a stale match cannot pass both reads.
                ref var frame = ref frames[(int)index];
                if (frame.Has(FrameFlags.Lru) && BelongsTo(ref frame, lruvec) && lruvec.PromoteLocked(frames, index))
                {
                    // Promoted through its page tables: workingset, its reference counts spent (Linux's folio_update_gen).
                    frame.ReplaceFlags(FrameFlags.Accessed | FrameFlags.LruRefsMask, FrameFlags.Workingset);
                    promoted++;
                }
            }
        }

        return promoted;
    }

    /// <summary>True when <paramref name="frame"/>'s node and charge are <paramref name="lruvec"/>'s (the root's when uncharged).</summary>
    private bool BelongsTo(ref FrameInfo frame, Lruvec lruvec)
    {
        var cgroup = frame.MemoryCgroupId == 0 ? Root.Id : frame.MemoryCgroupId;
        return frame.Node == lruvec.Node && cgroup == lruvec.Cgroup.Id;
    }

    /// <summary>
    /// The per-PTE-table step shared by the aging walk and look-around (Linux's <c>walk_pte_range</c> and the loop of
    /// <c>lru_gen_look_around</c>): for each present PTE of one of the lruvec's pages, clears the accessed bit, asks the
    /// secondary MMUs with <c>clear_young</c> when the process has any (whatever the primary bit said) — once per run of
    /// such PTEs, answering per page (<see cref="MmuNotifierChain.ClearYoungBitmap"/>) — and collects the young pages.
    /// Stops before a table whose entries might not fit the buffer, recording where to resume.
    /// </summary>
    /// <remarks>
    /// With <c>aging</c> (the walk that opened a new generation), a young page of the generation that was the youngest
    /// before it — one faulted in or promoted since the previous aging — has its accessed bits cleared but is not
    /// promoted: its one reference is the one that put it there, so it now stands one generation behind the pages found
    /// young in older generations, which have been referenced across an aging. Without this a page touched once at fault
    /// (a cold page) is promoted with every hot page, both end up together in the youngest generation with their bits
    /// cleared, and the next aging finds nothing young to tell them apart. Look-around (<c>aging</c> false) promotes
    /// every young page not already in the youngest generation.
    /// </remarks>
    private struct AgingVisitor(Reclaimer owner, Mm mm, Lruvec lruvec, uint[] buffer, ulong[] secondary, bool asksSecondary, bool aging, Hva skip = default) : IPteVisitor
    {
        /// <summary>Words of a bitmap with one bit per entry of a PTE table.</summary>
        public const int BitmapWords = HostPageTable.EntriesPerTable / 64;

        public int Count { get; private set; }

        public long Queries { get; private set; }

        public long Hits { get; private set; }

        public Hva? ResumeAt { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            if (Count > 0 && buffer.Length - Count < entries.Length)
            {
                ResumeAt = firstAddress;
                return false;
            }

            var memory = owner._memory;
            var zero = mm.Host.ZeroPfn;
            var maxSeq = lruvec.MaxSeq;
            var youngest = (int)(maxSeq % Lruvec.MaxGenerations) + 1;
            var previousYoungest = aging ? (int)((maxSeq - 1) % Lruvec.MaxGenerations) + 1 : youngest;

            // Pass 1, under the page-table lock: which PTEs are this lruvec's pages (candidates, at most what the buffer
            // can take), and which were young in the primary MMU (their accessed bits cleared here).
            Span<ulong> candidates = stackalloc ulong[BitmapWords];
            Span<ulong> young = stackalloc ulong[BitmapWords];
            var room = buffer.Length - Count;
            for (var i = 0; i < entries.Length && room > 0; i++)
            {
                var pte = new HostPte(entries[i]);
                if (!pte.IsPresent || pte.Pfn == zero || firstAddress + ((ulong)i * Paging.PageSize) == skip)
                {
                    continue;
                }

                ref var frame = ref memory.Frame(pte.Pfn);
                if (!frame.Has(FrameFlags.Lru) || !owner.BelongsTo(ref frame, lruvec))
                {
                    continue; // another cgroup's or node's page, or isolated: its accessed bits are not ours to clear
                }

                room--;
                candidates[i >> 6] |= 1UL << (i & 63);
                if (pte.IsAccessed)
                {
                    entries[i] = pte.Without(HostPte.AccessedBit).Value;
                    young[i >> 6] |= 1UL << (i & 63);
                }
            }

            // Pass 2: the secondary MMUs, asked with clear_young whatever the primary bit said — once per run of
            // candidate PTEs (usually the whole table), answering per page, instead of once per page.
            if (asksSecondary)
            {
                var i = 0;
                while (i < entries.Length)
                {
                    if (!IsSet(candidates, i))
                    {
                        i++;
                        continue;
                    }

                    var runEnd = i + 1;
                    while (runEnd < entries.Length && IsSet(candidates, runEnd))
                    {
                        runEnd++;
                    }

                    Queries += runEnd - i;
                    var runStart = firstAddress + ((ulong)i * Paging.PageSize);
                    if (mm.Notifiers.ClearYoungBitmap(runStart, firstAddress + ((ulong)runEnd * Paging.PageSize), secondary))
                    {
                        for (var j = i; j < runEnd; j++)
                        {
                            if (IsSet(secondary, j - i))
                            {
                                Hits++;
                                if (owner._options.SecondaryAging)
                                {
                                    young[j >> 6] |= 1UL << (j & 63);
                                }
                            }
                        }
                    }

                    i = runEnd;
                }
            }

            // Pass 3: collect the young candidates not already in the youngest generation (nor, when aging, the one that
            // was the youngest before it: see the remarks).
            for (var w = 0; w < BitmapWords; w++)
            {
                var bits = young[w] & candidates[w];
                while (bits != 0)
                {
                    var i = (w << 6) + System.Numerics.BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                    var pfn = new HostPte(entries[i]).Pfn;
                    var generation = memory.Frame(pfn).Generation;
                    if (generation != youngest && generation != previousYoungest)
                    {
                        buffer[Count++] = (uint)pfn.Value;
                    }
                }
            }

            return true;
        }

        private static bool IsSet(ReadOnlySpan<ulong> bitmap, int bit) => (bitmap[bit >> 6] & (1UL << (bit & 63))) != 0;
    }
}

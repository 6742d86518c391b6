using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The classic LRU's batched aging: a batch's exclusively mapped pages, grouped by process and PTE table, aged a run at
/// a time under one page-table lock with one <c>clear_flush_young</c> bitmap query to the secondary MMUs.
/// </summary>
public sealed partial class Reclaimer
{
    /// <summary>Words of the secondary answer bitmap: one bit per entry of a PTE table.</summary>
    private const int BatchAgingBitmapWords = HostPageTable.EntriesPerTable / 64;

    /// <summary>
    /// <c>folio_referenced</c> for every frame of <paramref name="batch"/> flagged in <paramref name="age"/> (each isolated
    /// by the caller), writing each one's young mappings to <paramref name="references"/> and whether its walk was complete
    /// to <paramref name="complete"/> (unflagged entries are left as they are). A frame mapped once by the only member of its
    /// anon family, not KSM, is aged with the others of that process: they are sorted by page index, cut into runs of
    /// consecutive addresses inside one PTE table, and each run has its PTE accessed bits tested and cleared under one hold
    /// of the table's lock, then ONE <see cref="Hypervisor.Notifier.MmuNotifierChain.ClearFlushYoungBitmap"/> over the run
    /// (still under the lock, as <c>folio_referenced_one</c> asks). Every other frame — shared by fork or KSM, or whose
    /// process's mmap lock is busy — goes through the per-mapping walk (<see cref="FolioReferenced"/>). Per page the
    /// answer is the one <see cref="FolioReferenced"/> gives: the primary bit, OR the secondary answer when
    /// <see cref="ReclaimOptions.SecondaryAging"/> is on; each page asked counts as one secondary young query.
    /// </summary>
    /// <remarks>
    /// Linux's classic path ages folio by folio (one <c>clear_flush_young</c> and one secondary flush per page); the batch
    /// is this project's departure, the classic counterpart of the multi-gen walk's per-table <c>clear_young</c> bitmap.
    /// Only pages of the batch are asked about: a gap in the addresses ends a run, so no other page's secondary accessed
    /// bit is cleared. Lock order per group: the process's mmap lock (read, try) → the PTE table's lock → the secondary
    /// MMU's own lock inside the notifier.
    /// </remarks>
    internal unsafe void FolioReferencedBatch(ReadOnlySpan<uint> batch, ReadOnlySpan<bool> age, Span<int> references, Span<bool> complete) // unsafe: the run visitor reads its frames and writes its answers through pointers into pinned stack memory.
    {
        Span<AgingCandidate> candidates = stackalloc AgingCandidate[batch.Length];
        var count = 0;
        for (var i = 0; i < batch.Length; i++)
        {
            if (!age[i])
            {
                continue;
            }

            ref var frame = ref _memory.Frame(new Pfn(batch[i]));
            if (IsExclusivelyMapped(ref frame) && !frame.Has(FrameFlags.PmdMapped) && Rmap.MembersOf(frame.RmapOwner).Length == 1)
            {
                candidates[count++] = new AgingCandidate(frame.RmapOwner, frame.RmapIndex, i);
            }
            else
            {
                references[i] = FolioReferenced(new Pfn(batch[i]), out complete[i]);
            }
        }

        if (count == 0)
        {
            return;
        }

        candidates = candidates[..count];
        candidates.Sort(static (a, b) => a.Family != b.Family ? a.Family.CompareTo(b.Family) : a.Index.CompareTo(b.Index));
        Span<uint> runFrames = stackalloc uint[count];
        Span<int> runReferences = stackalloc int[count];
        var secondary = new ulong[BatchAgingBitmapWords];
        var group = 0;
        while (group < count)
        {
            var family = candidates[group].Family;
            var groupEnd = group + 1;
            while (groupEnd < count && candidates[groupEnd].Family == family)
            {
                groupEnd++;
            }

            AgeFamilyGroup(batch, candidates[group..groupEnd], runFrames, runReferences, secondary, references, complete);
            group = groupEnd;
        }
    }

    /// <summary>One anon family's candidates (sorted by index): under its process's mmap lock, aged run by run; the rest per mapping.</summary>
    private unsafe void AgeFamilyGroup(ReadOnlySpan<uint> batch, ReadOnlySpan<AgingCandidate> group, Span<uint> runFrames, Span<int> runReferences,
        ulong[] secondary, Span<int> references, Span<bool> complete) // unsafe: see FolioReferencedBatch.
    {
        var members = Rmap.MembersOf(group[0].Family);
        var mm = members.Length == 1 ? members[0] : null;
        var taken = false;
        if (mm is null || !mm.TryEnterRmapRead(out taken))
        {
            // A fork since the check, or the lock is busy: the per-mapping walk handles (and counts) it.
            foreach (var candidate in group)
            {
                references[candidate.Slot] = FolioReferenced(new Pfn(batch[candidate.Slot]), out complete[candidate.Slot]);
            }

            return;
        }

        try
        {
            var j = 0;
            while (j < group.Length)
            {
                // Under the mmap lock a fork cannot add a mapping: a mapcount of 1 seen now stays 1 until the run is aged.
                var head = group[j];
                ref var headFrame = ref _memory.Frame(new Pfn(batch[head.Slot]));
                if (!IsExclusivelyMapped(ref headFrame) || !mm.TryFindAnonMapping(head.Family, head.Index, out var start))
                {
                    references[head.Slot] = FolioReferenced(new Pfn(batch[head.Slot]), out complete[head.Slot]);
                    j++;
                    continue;
                }

                var length = 1;
                var tableEnd = (start.Value | ((HostPageTable.EntriesPerTable * Paging.PageSize) - 1)) + 1;
                runFrames[0] = batch[head.Slot];
                while (j + length < group.Length)
                {
                    var next = group[j + length];
                    var expected = start.Value + ((ulong)length * Paging.PageSize);
                    if (expected >= tableEnd || !IsExclusivelyMapped(ref _memory.Frame(new Pfn(batch[next.Slot])))
                        || !mm.TryFindAnonMapping(next.Family, next.Index, out var address) || address.Value != expected)
                    {
                        break;
                    }

                    runFrames[length++] = batch[next.Slot];
                }

                runReferences[..length].Clear();
                fixed (uint* frames = runFrames)
                fixed (int* answers = runReferences)
                {
                    var visitor = new RunAgeVisitor(this, mm, frames, answers, secondary);
                    mm.PageTable.Walk(start, start + ((ulong)length * Paging.PageSize), allocate: false, ref visitor);
                    Interlocked.Add(ref _youngQueries, visitor.Queries);
                    Interlocked.Add(ref _youngHits, visitor.Hits);
                }

                for (var k = 0; k < length; k++)
                {
                    var slot = group[j + k].Slot;
                    references[slot] = runReferences[k];
                    complete[slot] = true;
                }

                j += length;
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

    /// <summary>A frame the batched aging can take: mapped once by an anon family, not KSM.</summary>
    private static bool IsExclusivelyMapped(ref FrameInfo frame) =>
        frame.MapCount == 1 && frame.RmapOwner != FrameInfo.NoOwner && !frame.Has(FrameFlags.Ksm);

    /// <summary>A batch entry to age: its anon family and page index (the sort key) and its place in the batch.</summary>
    private readonly record struct AgingCandidate(int Family, ulong Index, int Slot);

    /// <summary>
    /// <c>folio_referenced_one</c> for a run of one PTE table (its lock held by the walk): each PTE that still maps its
    /// frame has its accessed bit tested and cleared; then the secondary MMUs are asked with one
    /// <c>clear_flush_young</c> bitmap query per stretch of such PTEs (usually the whole run).
    /// </summary>
    private unsafe struct RunAgeVisitor(Reclaimer owner, Mm mm, uint* frames, int* references, ulong[] secondary) : IPteVisitor // unsafe: the run's frames and answers are pinned stack memory of the caller.
    {
        public long Queries { get; private set; }

        public long Hits { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            var i = 0;
            while (i < entries.Length)
            {
                if (!Maps(entries, i))
                {
                    i++;
                    continue;
                }

                var stretchEnd = i;
                while (stretchEnd < entries.Length && Maps(entries, stretchEnd))
                {
                    var pte = new HostPte(entries[stretchEnd]);
                    if (pte.IsAccessed)
                    {
                        entries[stretchEnd] = pte.Without(HostPte.AccessedBit).Value;
                        references[stretchEnd] = 1;
                    }

                    stretchEnd++;
                }

                Queries += stretchEnd - i;
                var stretchStart = firstAddress + ((ulong)i * Paging.PageSize);
                if (mm.Notifiers.ClearFlushYoungBitmap(stretchStart, firstAddress + ((ulong)stretchEnd * Paging.PageSize), secondary))
                {
                    for (var k = i; k < stretchEnd; k++)
                    {
                        var bit = k - i;
                        if ((secondary[bit >> 6] & (1UL << (bit & 63))) != 0)
                        {
                            Hits++;
                            if (owner._options.SecondaryAging)
                            {
                                references[k] = 1;
                            }
                        }
                    }
                }

                i = stretchEnd;
            }

            return false;
        }

        private readonly bool Maps(Span<ulong> entries, int i)
        {
            var pte = new HostPte(entries[i]);
            return pte.IsPresent && pte.Pfn.Value == frames[i];
        }
    }
}

using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>The reclaim side of <see cref="HostMmAuditor"/>.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Cross-checks the LRU lists, the cgroup charges, the swap cache and the swap map against the frames and against
    /// <paramref name="swapReferences"/> (how many swap PTEs name each slot, counted by the caller from every page table).
    /// Adds one line per violation. Call only while the host is quiescent.
    /// </summary>
    internal void Audit(IReadOnlyDictionary<ulong, int> swapReferences, List<string> violations)
    {
        var frames = _memory.FrameTable;
        var seen = new HashSet<uint>();
        foreach (var lruvec in Volatile.Read(ref _lruvecs))
        {
            lock (lruvec.Lock)
            {
                lruvec.AuditLocked(frames, violations, seen);
            }
        }

        var charged = new long[Cgroups.Count + 1];
        for (var index = 0; index < frames.Length; index++)
        {
            ref var frame = ref frames[index];
            var pfn = new Pfn((ulong)index);
            if (frame.IsFree)
            {
                continue;
            }

            if (frame.Has(FrameFlags.Lru) && !seen.Contains((uint)index))
            {
                violations.Add($"{pfn} has the LRU flag but is on no LRU list");
            }

            if (frame.Generation != 0 && !frame.Has(FrameFlags.Lru))
            {
                violations.Add($"{pfn} has generation field {frame.Generation} but is on no LRU list");
            }

            if (frame.Generation > Lruvec.MaxGenerations)
            {
                violations.Add($"{pfn} has generation field {frame.Generation}, beyond the {Lruvec.MaxGenerations} generation lists");
            }

            if (frame.Generation != 0 && _options.Policy != LruPolicy.MultiGen)
            {
                violations.Add($"{pfn} has generation field {frame.Generation} under the {_options.Policy} policy");
            }

            if (frame.Has(FrameFlags.Isolated))
            {
                violations.Add($"{pfn} is still isolated: reclaim did not put it back");
            }

            if (frame.Has(FrameFlags.Locked) && !frame.Has(FrameFlags.PageTable))
            {
                violations.Add($"{pfn} is still page-locked");
            }

            if (frame.MemoryCgroupId > 0 && frame.MemoryCgroupId < charged.Length)
            {
                charged[frame.MemoryCgroupId]++;
            }

            var anon = frame.Has(FrameFlags.SwapBacked) || frame.Has(FrameFlags.SwapCache);
            if (anon && frame.RefCount > 0 && !frame.Has(FrameFlags.Lru))
            {
                violations.Add($"{pfn} is an anonymous page in use (flags {frame.Flags}) but on no LRU list: reclaim could never find it");
            }

            if (frame.Has(FrameFlags.SwapCache))
            {
                var slot = (ulong)frame.SwapSlot;
                if (Cache is null || !Cache.TryGetFrame(slot, out var cached) || cached != pfn)
                {
                    violations.Add($"{pfn} says it caches swap slot {slot} but the swap cache does not hold it there");
                }
                else if (!Area!.GetUsage(slot).HasCache)
                {
                    violations.Add($"{pfn} caches swap slot {slot} but the slot has no HAS_CACHE");
                }
            }
        }

        foreach (var cgroup in Cgroups)
        {
            if (charged[cgroup.Id] != cgroup.UsagePages)
            {
                violations.Add($"{cgroup}: {charged[cgroup.Id]} frames are charged to it but its usage says {cgroup.UsagePages}");
            }
        }

        if (Area is not { } area)
        {
            if (swapReferences.Count != 0)
            {
                violations.Add($"{swapReferences.Count} swap entries exist but the host has no swap area");
            }

            return;
        }

        if (area.Audit() is { } broken)
        {
            violations.Add($"swap area: {broken}");
        }

        for (ulong slot = 1; slot < area.SlotCount; slot++)
        {
            var usage = area.GetUsage(slot);
            swapReferences.TryGetValue(slot, out var references);
            if (usage.IsBad)
            {
                if (references != 0)
                {
                    violations.Add($"swap slot {slot} is BAD but {references} swap PTEs name it");
                }

                continue;
            }

            if (usage.MapCount != references)
            {
                violations.Add($"swap slot {slot} counts {usage.MapCount} references but {references} swap PTEs name it");
            }

            var hasFrame = Cache!.TryGetFrame(slot, out var pfn);
            if (usage.HasCache != hasFrame)
            {
                violations.Add($"swap slot {slot}: HAS_CACHE is {usage.HasCache} but the swap cache {(hasFrame ? $"holds {pfn}" : "holds no frame")}");
            }
            else if (hasFrame && (!_memory.Frame(pfn).Has(FrameFlags.SwapCache) || _memory.Frame(pfn).SwapSlot != slot))
            {
                violations.Add($"swap slot {slot} is cached by {pfn}, whose flags {_memory.Frame(pfn).Flags} and slot {_memory.Frame(pfn).SwapSlot} disagree");
            }

            if (usage.IsFree && Cache.ShadowOf(slot) != 0)
            {
                // Harmless for correctness (a new owner overwrites it) but a leak of workingset state.
                violations.Add($"swap slot {slot} is free but keeps a shadow entry");
            }
        }
    }
}

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The anonymous reverse map of one host (Linux's <c>anon_vma</c> trees, simplified): which processes hold VMAs of
/// each anon family. A family is born with an anonymous mmap (a fresh <see cref="Vmas.Vma.AnonId"/>); a VMA split,
/// moved by mremap or copied into a forked child keeps its family, so a frame created in a family (its
/// <see cref="Frames.FrameInfo.RmapOwner"/>) is mapped, if at all, at <see cref="Vmas.Vma.AddressOfIndex"/> of its
/// page index in some VMA of that family in some member process. Walking a frame's mappings therefore costs one
/// lookup here plus, per member process, a search of its VMAs of that family: O(processes × VMAs of the family),
/// with no per-page or per-mapping record at all.
/// </summary>
/// <remarks>
/// <para>Memory: one small array of processes per family (a managed object per VMA lineage, never per page).</para>
/// <para>Lock: <c>_lock</c> guards the table; it is a leaf, held only to copy or replace a member array. Arrays are
/// immutable once published, so a walker reads a snapshot without holding the lock. A process joins a family before
/// any frame of the family can be mapped in it (at mmap, under its mmap write lock; at fork, before the child's PTEs
/// are copied) and leaves every family at exit, after its last PTE is gone.</para>
/// </remarks>
internal sealed class ReverseMap
{
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Mm[]> _families = [];

    /// <summary>Families with at least one member.</summary>
    public int Families
    {
        get
        {
            lock (_lock)
            {
                return _families.Count;
            }
        }
    }

    /// <summary>Makes <paramref name="mm"/> a member of <paramref name="family"/> (no-op if it already is).</summary>
    public void Join(int family, Mm mm)
    {
        lock (_lock)
        {
            if (!_families.TryGetValue(family, out var members))
            {
                _families[family] = [mm];
                return;
            }

            if (Array.IndexOf(members, mm) < 0)
            {
                _families[family] = [.. members, mm];
            }
        }
    }

    /// <summary>Takes <paramref name="mm"/> out of every family in <paramref name="families"/>; empty families are forgotten.</summary>
    public void Leave(Mm mm, IEnumerable<int> families)
    {
        lock (_lock)
        {
            foreach (var family in families)
            {
                if (!_families.TryGetValue(family, out var members))
                {
                    continue;
                }

                var rest = Array.FindAll(members, m => !ReferenceEquals(m, mm));
                if (rest.Length == 0)
                {
                    _families.Remove(family);
                }
                else
                {
                    _families[family] = rest;
                }
            }
        }
    }

    /// <summary>The members of <paramref name="family"/> now (an immutable snapshot; empty when none).</summary>
    public Mm[] MembersOf(int family)
    {
        lock (_lock)
        {
            return _families.TryGetValue(family, out var members) ? members : [];
        }
    }
}

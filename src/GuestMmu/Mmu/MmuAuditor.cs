using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>
/// Checks the secondary MMU against the host: every present leaf spte maps the frame its host PTE maps
/// now, with no more permission than the host PTE grants, and never a free frame. It holds the MMU lock
/// for write while it walks, which makes the check valid even while the host is changing memory: a host
/// PTE that loses a frame or permission changes only after a notifier start, which zaps under that lock.
/// It also recounts every EPT leaf table against the counts the zap relies on (<see cref="LeafTableCounts"/>).
/// </summary>
public static class MmuAuditor
{
    /// <summary>Returns one line per violation; empty when the MMU is coherent with the host.</summary>
    public static IReadOnlyList<string> Check(TdpMmu mmu)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        return mmu.RunExclusive(() =>
        {
            var violations = new List<string>();
            var iterator = mmu.Ept.Iterate(default, EptGeometry.End);
            while (iterator.MoveNext())
            {
                var spte = iterator.Spte;
                if (!spte.IsPresent || !(iterator.Level == 1 || spte.IsLargePage))
                {
                    continue;
                }

                // A large leaf maps every frame it covers: check each one against its own host PTE.
                var frames = EptGeometry.FramesPerEntry(iterator.Level);
                for (var offset = 0UL; offset < frames; offset++)
                {
                    if (!CheckFrame(mmu, iterator.Gfn + offset, iterator.Level, spte, new Pfn(spte.Pfn.Value + offset), violations))
                    {
                        break;
                    }
                }
            }

            violations.AddRange(mmu.Ept.CheckLeafTableCounts());
            return (IReadOnlyList<string>)violations;
        });
    }

    /// <summary>Checks one frame a leaf maps; false when the rest of the leaf need not be checked (outside every memslot).</summary>
    private static bool CheckFrame(TdpMmu mmu, Gfn gfn, int level, Spte spte, Pfn pfn, List<string> violations)
    {
        var slot = mmu.Memslots.FindByGfn(gfn);
        if (slot is null)
        {
            violations.Add($"{gfn} level {level}: {spte} lies outside every memslot");
            return false;
        }

        var backing = slot.Backing;
        var hva = slot.GfnToHva(gfn);
        var hostPte = backing.ReadPte(hva);
        if (!hostPte.IsPresent)
        {
            violations.Add($"{gfn} ({hva}): level {level} spte maps {pfn} but the host PTE is {hostPte}");
        }
        else if (hostPte.Pfn != pfn)
        {
            violations.Add($"{gfn} ({hva}): level {level} spte maps {pfn} but the host maps {hostPte.Pfn}");
        }
        else if (spte.IsWritable && !hostPte.IsWritable)
        {
            violations.Add($"{gfn} ({hva}): spte is writable but the host PTE {hostPte} is not");
        }

        switch (backing.QueryFrame(pfn))
        {
            case BackingFrameState.OutOfRange:
                violations.Add($"{gfn} ({hva}): spte maps {pfn}, which is outside host RAM ({backing.TotalFrames} frames)");
                break;
            case BackingFrameState.Free:
                violations.Add($"{gfn} ({hva}): spte maps {pfn}, which is free");
                break;
        }

        return true;
    }
}

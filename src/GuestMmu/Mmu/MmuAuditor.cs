using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>
/// Checks the secondary MMU against the host: every present leaf spte maps the frame its host PTE maps
/// now, with no more permission than the host PTE grants, and never a free frame. It holds the MMU lock
/// for write while it walks, which makes the check valid even while the host is changing memory: a host
/// PTE that loses a frame or permission changes only after a notifier start, which zaps under that lock.
/// It also recounts every EPT leaf table against the counts the zap relies on (<see cref="Ept.LeafTableCounts"/>).
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
            var iterator = mmu.Ept.Iterate(default, Ept.EptGeometry.End);
            while (iterator.MoveNext())
            {
                var spte = iterator.Spte;
                if (!spte.IsPresent || !(iterator.Level == 1 || spte.IsLargePage))
                {
                    continue;
                }

                var gfn = iterator.Gfn;
                var slot = mmu.Memslots.FindByGfn(gfn);
                if (slot is null)
                {
                    violations.Add($"{gfn} level {iterator.Level}: {spte} lies outside every memslot");
                    continue;
                }

                if (slot.Mm is not HostProcess process)
                {
                    continue;
                }

                var hva = slot.GfnToHva(gfn);
                var hostPte = process.HasExited ? HostPte.None : process.PageTable.Read(hva);
                if (!hostPte.IsPresent)
                {
                    violations.Add($"{gfn} ({hva}): spte maps {spte.Pfn} but the host PTE is {hostPte}");
                }
                else if (hostPte.Pfn != spte.Pfn)
                {
                    violations.Add($"{gfn} ({hva}): spte maps {spte.Pfn} but the host maps {hostPte.Pfn}");
                }
                else if (spte.IsWritable && !hostPte.IsWritable)
                {
                    violations.Add($"{gfn} ({hva}): spte is writable but the host PTE {hostPte} is not");
                }

                if (process.Host.Memory.IsFree(spte.Pfn))
                {
                    violations.Add($"{gfn} ({hva}): spte maps {spte.Pfn}, which is free");
                }
            }

            violations.AddRange(mmu.Ept.CheckLeafTableCounts());
            return (IReadOnlyList<string>)violations;
        });
    }
}

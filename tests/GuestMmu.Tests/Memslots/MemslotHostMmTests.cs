using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

public sealed class MemslotHostMmTests
{
    private const ulong Page = Paging.PageSize;

    [Test]
    public void Slot_OverARealMapping_TranslatesIntoIt_AndIsFoundByItsHostRange()
    {
        using var host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 64UL << 20 } });
        var mm = host.CreateMm();
        var other = host.CreateMm();
        var mapping = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        var set = new MemslotSet();

        var slot = set.SetRegion(0, MemslotFlags.None, new Gpa(0x100_0000), 32 * Page, mapping, new HostProcessBacking(mm)).New!;
        set.SetRegion(1, MemslotFlags.None, new Gpa(0x200_0000), 32 * Page, mapping, new HostProcessBacking(other));

        Assert.That(slot.GfnToHva(new Gfn(0x1005)), Is.EqualTo(mapping + (5 * Page)));
        var hits = new List<MemslotGfnRange>();
        foreach (var range in set.OverlappingHva(mm, mapping + (4 * Page), mapping + (6 * Page)))
        {
            hits.Add(range);
        }

        Assert.That(hits, Is.EqualTo(new[] { new MemslotGfnRange(slot, new Gfn(0x1004), new Gfn(0x1006)) }));
    }
}

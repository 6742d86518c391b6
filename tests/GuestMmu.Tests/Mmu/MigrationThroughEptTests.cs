using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// Page migration under a guest: the unmap's start (Clear) zaps each spte, the restore adds no notifier, and the next
/// guest access refaults through get-user-pages to the new frame on the other node; a guest access that meets a
/// migration entry waits in get-user-pages (<c>migration_entry_wait</c>) and then maps the new frame.
/// </summary>
public class MigrationThroughEptTests
{
    private const ulong Page = HostGuest.Page;
    private const int Pages = 16;

    [Test]
    public void Migration_zaps_every_spte_and_the_guest_refaults_to_the_new_frames_with_its_data()
    {
        using var host = NewHost();
        using var guest = new HostGuest(host, Pages);
        using var cpu = new MmuContext(guest.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpu, (ulong)page * Page, Content(page)), Is.True);
        }

        Assert.That(Enumerable.Range(0, Pages).All(p => guest.Mmu.Ept.Read(new Gfn((ulong)p)).IsPresent), Is.True);
        var faults = guest.Mmu.Stats.Faults;

        var moved = host.Migration.MigratePages(guest.Mm, fromNode: 0, toNode: 1);

        Assert.That(moved.Migrated, Is.EqualTo(Pages));
        Assert.That(Enumerable.Range(0, Pages).Any(p => guest.Mmu.Ept.Read(new Gfn((ulong)p)).IsPresent), Is.False, "every spte was zapped by its page's start");
        AssertAudited(host, guest);
        var buffer = new byte[Page];
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestRead(cpu, (ulong)page * Page, buffer), Is.True);
            Assert.That(buffer, Is.EqualTo(Content(page)), $"page {page} reads the same after the move");
            var spte = guest.Mmu.Ept.Read(new Gfn((ulong)page));
            var hostPte = guest.Mm.PageTable.Read(guest.HvaOf((ulong)page));
            Assert.That(spte.IsPresent && spte.Pfn == hostPte.Pfn, Is.True, $"page {page}: the spte maps the host's new frame");
            Assert.That(host.Memory.NodeOf(spte.Pfn), Is.EqualTo(1));
        }

        Assert.That(guest.Mmu.Stats.Faults, Is.EqualTo(faults + Pages), "one refault per page");
        AssertAudited(host, guest);
    }

    [Test]
    public void A_guest_access_meeting_a_migration_entry_waits_in_get_user_pages_and_maps_the_new_frame()
    {
        using var host = NewHost();
        using var guest = new HostGuest(host, Pages);
        using var cpu = new MmuContext(guest.Mmu, 0, PagingContext.PagingOff);
        Assert.That(GuestWrite(cpu, 0, Content(42)), Is.True);
        Task<byte[]>? reader = null;
        host.Migration.AfterUnmap = _ =>
        {
            Assert.That(guest.Mmu.Ept.Read(new Gfn(0)).IsPresent, Is.False, "the unmap zapped the spte");
            reader = Task.Run(() =>
            {
                var bytes = new byte[Page];
                Assert.That(GuestRead(cpu, 0, bytes), Is.True);
                return bytes;
            });
            Assert.That(SpinWait.SpinUntil(() => guest.Mm.GupMigrationEntryWaits == 1, TimeSpan.FromSeconds(20)), Is.True, "the EPT fault's get-user-pages waits on the entry");
        };

        var status = host.Migration.MovePages(guest.Mm, [guest.Ram], [1]);

        host.Migration.AfterUnmap = null;
        Assert.That(status[0].Succeeded, Is.True);
        Assert.That(reader!.Wait(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(reader.Result, Is.EqualTo(Content(42)));
        var spte = guest.Mmu.Ept.Read(new Gfn(0));
        Assert.That(spte.IsPresent && host.Memory.NodeOf(spte.Pfn) == 1, Is.True, $"the waiting fault mapped the new frame, got {spte}");
        AssertAudited(host, guest);
    }

    [Test]
    public void Numa_balancing_zaps_the_scanned_sptes_and_the_guest_refaults_pull_its_pages_to_the_vcpus_node()
    {
        using var host = NewHost();
        using var guest = new HostGuest(host, Pages);
        using var cpu = new MmuContext(guest.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpu, (ulong)page * Page, Content(page)), Is.True);
        }

        host.NumaBalancing.Enabled = true;
        Assert.That(host.NumaBalancing.Step(1 << 20), Is.EqualTo(Pages));
        Assert.That(Enumerable.Range(0, Pages).Any(p => guest.Mmu.Ept.Read(new Gfn((ulong)p)).IsPresent), Is.False, "the PROT_NONE window's start (ProtectionVma) zapped every spte");
        AssertAudited(host, guest);

        // The vCPU runs on node 1: every refault is a hinting fault that pulls its page over.
        var vcpu = new Thread(() =>
        {
            HostThread.CurrentNode = 1;
            var buffer = new byte[Page];
            for (var page = 0; page < Pages; page++)
            {
                Assert.That(GuestRead(cpu, (ulong)page * Page, buffer), Is.True);
                Assert.That(buffer, Is.EqualTo(Content(page)));
            }
        });
        vcpu.Start();
        vcpu.Join();

        Assert.That(host.NumaBalancing.Stats.NumaHintFaults, Is.EqualTo(Pages));
        Assert.That(host.NumaBalancing.Stats.NumaPagesMigrated, Is.EqualTo(Pages));
        for (var page = 0; page < Pages; page++)
        {
            var spte = guest.Mmu.Ept.Read(new Gfn((ulong)page));
            Assert.That(spte.IsPresent && host.Memory.NodeOf(spte.Pfn) == 1, Is.True, $"page {page} is mapped from node 1, got {spte}");
        }

        AssertAudited(host, guest);
    }

    private static bool GuestWrite(MmuContext cpu, ulong address, byte[] data) => InGuest(cpu, () => cpu.Write(new Gva(address), data).IsOk);

    private static bool GuestRead(MmuContext cpu, ulong address, byte[] buffer) => InGuest(cpu, () => cpu.Read(new Gva(address), buffer).IsOk);

    private static bool InGuest(MmuContext cpu, Func<bool> access)
    {
        cpu.Port.EnterGuest();
        try
        {
            cpu.Port.ServiceRequests();
            return access();
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    /// <summary>A 64 MiB host with two NUMA nodes whose freed frames are poisoned and checked.</summary>
    private static Host NewHost() =>
        new(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2, AuditFreedFrames = true } });

    private static void AssertAudited(Host host, HostGuest guest)
    {
        Assert.That(HostMmAuditor.Check(host), Is.Empty);
        var violations = MmuAuditor.Check(guest.Mmu);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
    }

    private static byte[] Content(int kind)
    {
        var page = new byte[Page];
        for (var i = 0; i < page.Length; i += 8)
        {
            BitConverter.TryWriteBytes(page.AsSpan(i), ((ulong)(kind + 1) * 0x9E37_79B9_7F4A_7C15UL) ^ (ulong)(i + 1));
        }

        return page;
    }
}

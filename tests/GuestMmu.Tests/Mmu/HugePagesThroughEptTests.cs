using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// The secondary MMU maps what the host maps: a host huge page becomes one 2 MiB EPT leaf when the memslot's gpa and
/// hva agree modulo 2 MiB (KVM's mapping-level rules), a host split zaps it and the guest refaults at 4 KiB.
/// </summary>
public class HugePagesThroughEptTests
{
    private const ulong Page = 4096;
    private const ulong Huge = 2UL << 20;

    [Test]
    public void A_guest_write_over_a_host_huge_page_installs_one_2_mib_leaf_and_the_rest_needs_no_fault()
    {
        using var setup = new Setup(hvaOffset: 0);
        Assert.That(GuestWrite(setup.Cpu, 5 * Page, 0xAB), Is.True);

        Assert.That(setup.Mm.PageTable.IsHugeMapped(setup.Ram), Is.True, "the host mapped a huge page");
        var spte = setup.Mmu.Ept.Read(new Gfn(5), out var level);
        Assert.That(level, Is.EqualTo(2), $"one 2 MiB leaf, got {spte} at level {level}");
        Assert.That(spte.Pfn, Is.EqualTo(setup.Mm.PageTable.ReadPmd(setup.Ram).Pfn));
        Assert.That(setup.Mmu.Stats.LargeInstalls, Is.EqualTo(1));
        Assert.That(setup.Mmu.Stats.Pages2M, Is.EqualTo(1));
        var faults = setup.Mmu.Stats.Faults;
        for (var page = 0UL; page < 512; page += 37)
        {
            Assert.That(GuestWrite(setup.Cpu, page * Page, (byte)page), Is.True);
        }

        Assert.That(setup.Mmu.Stats.Faults, Is.EqualTo(faults), "every other page of the 2 MiB goes through the same leaf");
        setup.AssertAudited();
    }

    [Test]
    public void A_host_split_zaps_the_large_leaf_and_the_guest_refaults_at_4_kib_with_its_data()
    {
        using var setup = new Setup(hvaOffset: 0);
        for (var page = 0UL; page < 512; page++)
        {
            Assert.That(GuestWrite(setup.Cpu, page * Page, (byte)(page + 1)), Is.True);
        }

        setup.Mm.Mprotect(setup.Ram + (100 * Page), Page, Protection.Read); // splits the huge page

        Assert.That(setup.Mm.PageTable.IsHugeMapped(setup.Ram), Is.False);
        Assert.That(setup.Mmu.Ept.Read(new Gfn(5), out _).IsPresent, Is.False, "the split's start zapped the 2 MiB leaf");
        Assert.That(setup.Mmu.Stats.Pages2M, Is.Zero);
        setup.AssertAudited();
        var buffer = new byte[1];
        Assert.That(GuestRead(setup.Cpu, 7 * Page, buffer) && buffer[0] == 8, Is.True, "the data survived the split");
        var spte = setup.Mmu.Ept.Read(new Gfn(7), out var level);
        Assert.That(level, Is.EqualTo(1), $"the refault maps 4 KiB now, got {spte} at level {level}");
        Assert.That(spte.Pfn, Is.EqualTo(setup.Mm.PageTable.Read(setup.Ram + (7 * Page)).Pfn));
        setup.AssertAudited();
    }

    [Test]
    public void After_a_split_khugepaged_collapses_the_range_back_and_the_guest_refaults_to_one_2_mib_leaf()
    {
        using var setup = new Setup(hvaOffset: 0);
        for (var page = 0UL; page < 512; page++)
        {
            Assert.That(GuestWrite(setup.Cpu, page * Page, (byte)(page + 3)), Is.True);
        }

        setup.Mm.Mprotect(setup.Ram + (9 * Page), Page, Protection.Read);
        setup.Mm.Mprotect(setup.Ram + (9 * Page), Page, Protection.Read | Protection.Write);
        var buffer = new byte[1];
        Assert.That(GuestRead(setup.Cpu, 20 * Page, buffer), Is.True);
        Assert.That(setup.Mmu.Ept.Read(new Gfn(20), out var before).IsPresent && before == 1, Is.True, "4 KiB after the split");

        Assert.That(setup.Host.Khugepaged.Step(4096), Is.EqualTo(1), "the guest's accesses made the range referenced (accessed bits, test_young)");

        Assert.That(setup.Mm.PageTable.IsHugeMapped(setup.Ram), Is.True);
        Assert.That(setup.Mmu.Ept.Read(new Gfn(20), out _).IsPresent, Is.False, "the collapse's start zapped the 4 KiB sptes");
        setup.AssertAudited();
        Assert.That(GuestRead(setup.Cpu, 20 * Page, buffer) && buffer[0] == 23, Is.True, "the data survived split and collapse");
        var spte = setup.Mmu.Ept.Read(new Gfn(20), out var level);
        Assert.That(level, Is.EqualTo(2), $"one 2 MiB leaf again, got {spte} at level {level}");
        Assert.That(setup.Mmu.Stats.Pages2M, Is.EqualTo(1));
        setup.AssertAudited();
    }

    [Test]
    public void A_huge_page_migrated_whole_is_zapped_and_the_guest_refaults_to_one_2_mib_leaf_on_the_other_node()
    {
        using var setup = new Setup(hvaOffset: 0, nodes: 2);
        for (var page = 0UL; page < 512; page += 64)
        {
            Assert.That(GuestWrite(setup.Cpu, page * Page, (byte)(page + 5)), Is.True);
        }

        var moved = setup.Host.Migration.MigrateRange(setup.Mm, setup.Ram, setup.Ram + Huge, toNode: 1);

        Assert.That(moved.HugePages, Is.EqualTo(1));
        Assert.That(setup.Mmu.Ept.Read(new Gfn(0), out _).IsPresent, Is.False, "the migration's start zapped the 2 MiB leaf");
        setup.AssertAudited();
        var buffer = new byte[1];
        Assert.That(GuestRead(setup.Cpu, 64 * Page, buffer) && buffer[0] == 69, Is.True);
        var spte = setup.Mmu.Ept.Read(new Gfn(64), out var level);
        Assert.That(level == 2 && setup.Host.Memory.NodeOf(spte.Pfn) == 1, Is.True, $"one 2 MiB leaf on node 1, got {spte} at level {level}");
        setup.AssertAudited();
    }

    [Test]
    public void A_memslot_whose_hva_is_not_2_mib_aligned_with_its_gpa_maps_4_kib_even_over_a_host_huge_page()
    {
        using var setup = new Setup(hvaOffset: 4 * Page);
        Assert.That(GuestWrite(setup.Cpu, 0, 1), Is.True);

        Assert.That(setup.Mm.PageTable.IsHugeMapped(setup.Ram - (4 * Page)) || setup.Mm.PageTable.IsHugeMapped(setup.Ram), Is.True, "the host still uses a huge page");
        Assert.That(setup.Mmu.Ept.Read(new Gfn(0), out var level).IsPresent && level == 1, Is.True, "gpa and hva disagree modulo 2 MiB: 4 KiB");
        Assert.That(setup.Mmu.Stats.LargeInstalls, Is.Zero);
        setup.AssertAudited();
    }

    [Test]
    public void With_large_pages_off_the_ept_maps_4_kib()
    {
        using var setup = new Setup(hvaOffset: 0, largePages: false);
        Assert.That(GuestWrite(setup.Cpu, 0, 1), Is.True);

        Assert.That(setup.Mmu.Ept.Read(new Gfn(0), out var level).IsPresent && level == 1, Is.True);
        setup.AssertAudited();
    }

    private static bool GuestWrite(MmuContext cpu, ulong address, byte value) => InGuest(cpu, () => cpu.Write(new Gva(address), [value]).IsOk);

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

    /// <summary>A THP host, a process with 4 MiB of RAM mapped at a 2 MiB-aligned hva (plus <c>hvaOffset</c>), gpa 0 → that hva.</summary>
    private sealed class Setup : IDisposable
    {
        public Setup(ulong hvaOffset, bool largePages = true, int nodes = 1)
        {
            Host = new Host(new HostOptions
            {
                Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = nodes, AuditFreedFrames = true },
                TransparentHugePages = ThpMode.Always,
            });
            Mm = Host.CreateMm();
            var region = Mm.Mmap(4 * Huge, Protection.Read | Protection.Write);
            Ram = new Hva(((region.Value + Huge - 1) & ~(Huge - 1)) + hvaOffset);
            Mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions { LargePages = largePages });
            Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 2 * Huge, Ram, new HostProcessBacking(Mm));
            Cpu = new MmuContext(Mmu, 0, PagingContext.PagingOff);
        }

        public Host Host { get; }

        public Hypervisor.HostMm.Mm Mm { get; }

        public Hva Ram { get; }

        public TdpMmu Mmu { get; }

        public MmuContext Cpu { get; }

        public void AssertAudited()
        {
            Assert.That(HostMmAuditor.Check(Host), Is.Empty);
            var violations = MmuAuditor.Check(Mmu);
            Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
        }

        public void Dispose()
        {
            Cpu.Dispose();
            Mmu.Dispose();
            Mm.Exit();
            Host.Dispose();
        }
    }
}

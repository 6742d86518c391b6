using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;
using static Hypervisor.GuestMmu.Tests.Mmu.TestVm;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>The auditor finds each kind of incoherence it promises to (a checker that never fires proves nothing).</summary>
public sealed class MmuAuditorTests
{
    [Test]
    public void AnSpteForAnotherFrame_IsReported()
    {
        using var vm = new TestVm();
        var fault = vm.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Write);
        vm.AssertCoherent();

        var gfn = GpaOf(2).Gfn;
        Assert.That(vm.Mmu.Ept.TryInstallLeaf(gfn, 1, fault.Spte, Spte.Empty), Is.True);
        var stray = Spte.Leaf(vm.Host.ZeroPfn, writable: false, executable: true, large: false, accessed: true);
        Assert.That(vm.Mmu.Ept.TryInstallLeaf(gfn, 1, Spte.Empty, stray), Is.True);

        var violations = MmuAuditor.Check(vm.Mmu);
        Assert.That(violations, Has.Count.EqualTo(1));
        Assert.That(violations[0], Does.Contain($"but the host maps {fault.Spte.Pfn}"));
    }

    [Test]
    public void AWritableSpteOverAReadOnlyHostPte_IsReported()
    {
        using var vm = new TestVm();
        var read = vm.Mmu.HandleEptViolation(GpaOf(4), EptAccess.Read);
        Assert.That(read.Spte.IsWritable, Is.False, "the host maps the zero page read-only");

        var writable = Spte.Leaf(read.Spte.Pfn, writable: true, executable: true, large: false, accessed: true);
        Assert.That(vm.Mmu.Ept.TryInstallLeaf(GpaOf(4).Gfn, 1, read.Spte, writable), Is.True);

        Assert.That(MmuAuditor.Check(vm.Mmu), Has.One.Contains("is writable but the host PTE"));
    }

    [Test]
    public void ALargeLeaf_IsCheckedFrameByFrame()
    {
        using var vm = new TestVm(pages: 1024);
        var leaf = Spte.Leaf(new Pfn(0x20_0000), writable: false, executable: true, large: true, accessed: true);
        Assert.That(vm.Mmu.Ept.Install(new Gfn(512), 2, vm.Mmu.Ept.ReadAt(new Gfn(512), 2), leaf), Is.EqualTo(InstallResult.Installed));

        var violations = MmuAuditor.Check(vm.Mmu);
        var unbacked = violations.Where(v => v.Contains("but the host PTE is", StringComparison.Ordinal)).ToList();
        Assert.That(unbacked, Has.Count.EqualTo(512), "every frame of the 2 MiB leaf has no host page behind it");
        Assert.That(unbacked, Has.Some.StartsWith($"{new Gfn(512)} ").And.Some.StartsWith($"{new Gfn(1023)} "));
        Assert.That(unbacked, Has.Some.Contains($"maps {new Pfn(0x20_0000 + 511)}"));
        Assert.That(violations.Count(v => v.Contains("outside host RAM", StringComparison.Ordinal)), Is.EqualTo(512), "a frame beyond host RAM is reported, not a crash");
    }

    [Test]
    public unsafe void LeafTableCountsThatDisagreeWithTheEntries_AreReported()
    {
        using var vm = new TestVm();
        vm.Mmu.HandleEptViolation(GpaOf(1), EptAccess.Write);
        vm.AssertCoherent();

        // Written behind the table's back, as a missed count update would leave it.
        var table = vm.Mmu.Ept.ReadAt(new Gfn(0), 2).TableIndex;
        var entry = Spte.Leaf(vm.Mm.PageTable.Read(vm.HvaOf(1)).Pfn, writable: true, executable: true, large: false, accessed: true).WithAccessed(dirty: true);
        vm.Mmu.Ept.Arena.Table(table)[1] = entry.Value;

        var violations = MmuAuditor.Check(vm.Mmu);
        Assert.That(violations, Has.One.Contains("counts say clean, but 1 present entries are dirty"));
    }
}

using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Backing;

/// <summary>
/// The secondary MMU reaches its memory only through <see cref="Hypervisor.GuestMmu.Backing.IGuestMemoryBacking"/>:
/// a test double with no host MM drives the fault path, the walker, the zap's dirty hand-back and the auditor.
/// </summary>
public class BackingFaultPathTests
{
    private const ulong Page = Paging.PageSize;
    private static readonly Hva Base = new(0x7000_0000);

    [Test]
    public void AFaultResolvesThroughTheBackingAndReleasesItsReference()
    {
        using var backing = new FakeBacking(16, Base);
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 16 * Page, Base, backing);

        var write = mmu.HandleEptViolation(new Gpa(0x10_3000), EptAccess.Write);
        var read = mmu.HandleEptViolation(new Gpa(0x10_5000), EptAccess.Read);

        Assert.That(write.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(write.Spte.Pfn, Is.EqualTo(new Pfn(3)), "hva page 3 of the backing is frame 3");
        Assert.That(write.Spte.IsWritable, Is.True);
        Assert.That(read.Spte.Pfn, Is.EqualTo(new Pfn(5)));
        Assert.That(backing.Resolves, Is.EqualTo(2));
        Assert.That(backing.OutstandingReferences, Is.Zero, "every short-term reference is released after the install");
        Assert.That(MmuAuditor.Check(mmu), Is.Empty);
    }

    [Test]
    public void AReadOnlyBackingPageGetsAReadOnlySpteAndAWriteFaultIsAHostFault()
    {
        using var backing = new FakeBacking(4, Base);
        backing.MakeReadOnly(1);
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 4 * Page, Base, backing);

        var read = mmu.HandleEptViolation(new Gpa(Page), EptAccess.Read);
        var write = mmu.HandleEptViolation(new Gpa(Page), EptAccess.Write);

        Assert.That(read.Spte.IsWritable, Is.False);
        Assert.That(write.Outcome, Is.EqualTo(EptFaultOutcome.HostFault));
        Assert.That(backing.OutstandingReferences, Is.Zero);
    }

    [Test]
    public void TheWalkerReadsAndWritesFrameBytesThroughTheBacking()
    {
        using var backing = new FakeBacking(8, Base);
        backing.FrameBytes(2)[100] = 0x5A;
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 8 * Page, Base, backing);
        using var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff);
        cpu.Port.EnterGuest();

        var buffer = new byte[1];
        var read = cpu.Read(new Gva((2 * Page) + 100), buffer);
        var wrote = cpu.Write(new Gva((6 * Page) + 7), new byte[] { 0xC3 });
        cpu.Port.ExitGuest();

        Assert.That(read.IsOk, Is.True, read.ToString());
        Assert.That(buffer[0], Is.EqualTo(0x5A));
        Assert.That(wrote.IsOk, Is.True, wrote.ToString());
        Assert.That(backing.FrameBytes(6)[7], Is.EqualTo(0xC3));
    }

    [Test]
    public void AZapHandsEveryDirtyFrameBackToTheBacking()
    {
        using var backing = new FakeBacking(8, Base);
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 8 * Page, Base, backing);
        using (var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff))
        {
            cpu.Port.EnterGuest();
            Assert.That(cpu.Write(new Gva(1 * Page), new byte[] { 1 }).IsOk, Is.True); // sets the EPT dirty bit
            Assert.That(cpu.Write(new Gva(4 * Page), new byte[] { 1 }).IsOk, Is.True);
            Assert.That(cpu.Read(new Gva(5 * Page), new byte[1]).IsOk, Is.True);      // accessed, never dirty
            cpu.Port.ExitGuest();
        }

        var range = new NotifierRange(backing, Base, Base + (8 * Page), NotifierEvent.Unmap);
        backing.Notifiers.InvalidateRangeStart(ref range);
        backing.Notifiers.InvalidateRangeEnd(ref range);

        Assert.That(backing.Dirty.Keys.Order(), Is.EqualTo(new ulong[] { 1, 4 }));
        Assert.That(mmu.Stats.DirtyPropagated, Is.EqualTo(2));
        Assert.That(mmu.Ept.CountPresentLeaves(), Is.Zero);
    }

    [Test]
    public void ReleaseHandsDirtyFramesOfEverySlotToItsOwnBacking()
    {
        using var first = new FakeBacking(4, Base);
        using var second = new FakeBacking(4, Base + (64 * Page));
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 4 * Page, first.Base, first);
        mmu.SetMemoryRegion(1, MemslotFlags.None, new Gpa(0x100_0000), 4 * Page, second.Base, second);
        using (var cpu = new MmuContext(mmu, 0, PagingContext.PagingOff))
        {
            cpu.Port.EnterGuest();
            Assert.That(cpu.Write(new Gva(2 * Page), new byte[] { 1 }).IsOk, Is.True);
            Assert.That(cpu.Write(new Gva(0x100_0000 + (3 * Page)), new byte[] { 1 }).IsOk, Is.True);
            cpu.Port.ExitGuest();
        }

        mmu.Release(first);

        Assert.That(first.Dirty.Keys, Is.EqualTo(new ulong[] { 2 }));
        Assert.That(second.Dirty.Keys, Is.EqualTo(new ulong[] { 3 }));
        Assert.That(mmu.Stats.DirtyOrphaned, Is.Zero);
        Assert.That(mmu.IsReleased, Is.True);
    }

    [Test]
    public void TheAuditorChecksSptesAgainstTheBackingsPtes()
    {
        using var backing = new FakeBacking(4, Base);
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 4 * Page, Base, backing);
        mmu.HandleEptViolation(new Gpa(0), EptAccess.Write);
        mmu.HandleEptViolation(new Gpa(Page), EptAccess.Write);
        Assert.That(MmuAuditor.Check(mmu), Is.Empty);

        // The host takes write permission away without telling the MMU: the auditor must see the writable spte.
        backing.MakeReadOnly(1);

        var violations = MmuAuditor.Check(mmu);
        Assert.That(violations, Has.Count.EqualTo(1));
        Assert.That(violations[0], Does.Contain("spte is writable but the host PTE"));
    }
}

using System.Buffers.Binary;
using System.Collections.Concurrent;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// The MMU owns memslot updates, as KVM's <c>kvm_set_memslot</c>: a delete or a move zaps the old range and flushes
/// before the call returns, dirty logging write-protects, and a created slot subscribes to its process. Nothing a
/// caller can forget.
/// </summary>
public class MemslotUpdateTests
{
    private const ulong Page = TestVm.Page;

    [Test]
    public void DeletingASlotZapsItsSptesAndFlushesBeforeReturning()
    {
        using var vm = new TestVm(pages: 16);
        for (ulong page = 0; page < 16; page++)
        {
            vm.Mmu.HandleEptViolation(TestVm.GpaOf(page), EptAccess.Write);
        }

        var flushesBefore = vm.Mmu.Stats.TlbFlushes;

        var change = vm.Mmu.DeleteMemoryRegion(0);

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Deleted));
        Assert.That(vm.Mmu.Ept.CountPresentLeaves(), Is.Zero);
        Assert.That(vm.Mmu.Stats.Zapped, Is.EqualTo(16));
        Assert.That(vm.Mmu.Stats.MemslotZaps, Is.EqualTo(1));
        Assert.That(vm.Mmu.Stats.TlbFlushes, Is.EqualTo(flushesBefore + 1));
        Assert.That(vm.Mmu.HandleEptViolation(TestVm.GpaOf(3), EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.Mmio));
        vm.AssertCoherent();
    }

    [Test]
    public void MovingASlotZapsTheOldRangeAndTheNewRangeRefaultsToTheSameFrames()
    {
        using var vm = new TestVm(pages: 8);
        var before = vm.Mmu.HandleEptViolation(TestVm.GpaOf(5), EptAccess.Write).Spte.Pfn;
        var moved = new Gpa(0x4000_0000);

        var change = vm.Mmu.SetMemoryRegion(0, MemslotFlags.None, moved, 8 * Page, vm.Base, new HostProcessBacking(vm.Mm));

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.Moved));
        Assert.That(vm.Mmu.Ept.CountPresentLeaves(), Is.Zero, "the old range's sptes are gone before the call returns");
        Assert.That(vm.Mmu.HandleEptViolation(TestVm.GpaOf(5), EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.Mmio));
        var after = vm.Mmu.HandleEptViolation(new Gpa(moved.Value + (5 * Page)), EptAccess.Read);
        Assert.That(after.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(after.Spte.Pfn, Is.EqualTo(before), "the slot moved in guest-physical space; the host memory behind it did not");
        vm.AssertCoherent();
    }

    [Test]
    public void TurningOnDirtyLoggingWriteProtectsTheSlotUntilTheNextWriteFault()
    {
        using var vm = new TestVm(pages: 8);
        for (ulong page = 0; page < 4; page++)
        {
            vm.Mmu.HandleEptViolation(TestVm.GpaOf(page), EptAccess.Write);
        }

        vm.Mmu.HandleEptViolation(TestVm.GpaOf(6), EptAccess.Read);

        var change = vm.Mmu.SetMemoryRegion(0, MemslotFlags.LogDirtyPages, new Gpa(0), 8 * Page, vm.Base, new HostProcessBacking(vm.Mm));

        Assert.That(change.Kind, Is.EqualTo(MemslotChangeKind.FlagsChanged));
        Assert.That(vm.Mmu.Stats.WriteProtected, Is.EqualTo(4));
        Assert.That(vm.Mmu.Ept.CountPresentLeaves(), Is.EqualTo(5), "write-protection keeps the mappings");
        for (ulong page = 0; page < 8; page++)
        {
            Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(page).Gfn).IsWritable, Is.False, $"page {page}");
        }

        var refault = vm.Mmu.HandleEptViolation(TestVm.GpaOf(2), EptAccess.Write);
        Assert.That(refault.Outcome, Is.EqualTo(EptFaultOutcome.Installed));
        Assert.That(refault.Spte.IsWritable, Is.True);

        // Turning it off removes no permission: nothing is write-protected again.
        vm.Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 8 * Page, vm.Base, new HostProcessBacking(vm.Mm));
        Assert.That(vm.Mmu.Stats.WriteProtected, Is.EqualTo(4));
        vm.AssertCoherent();
    }

    [Test]
    public void ACreatedSlotSubscribesItsProcessSoHostChangesReachIt()
    {
        using var vm = new TestVm(pages: 4);
        var other = vm.Host.CreateMm();
        var ram = other.Mmap(4 * Page, Protection.Read | Protection.Write);
        vm.Mmu.SetMemoryRegion(1, MemslotFlags.None, new Gpa(0x100_0000), 4 * Page, ram, new HostProcessBacking(other));
        vm.Mmu.HandleEptViolation(new Gpa(0x100_0000), EptAccess.Write);

        other.Munmap(ram, 4 * Page);

        Assert.That(vm.Mmu.Ept.Read(new Gpa(0x100_0000).Gfn).IsPresent, Is.False, "the munmap's notifier reached the MMU without an explicit Attach");
        var subscription = vm.Mmu.Attach(other);
        Assert.That(vm.Mmu.Attach(other), Is.SameAs(subscription), "one subscription per process");
        vm.AssertCoherent();
        other.Exit();
    }

    [Test]
    public void ABrokenRuleChangesNothing()
    {
        using var vm = new TestVm(pages: 4);
        vm.Mmu.HandleEptViolation(TestVm.GpaOf(1), EptAccess.Write);
        var generation = vm.Mmu.Memslots.Generation;

        var error = Assert.Throws<MemslotException>(() =>
            vm.Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0x10_0000), 8 * Page, vm.Base, new HostProcessBacking(vm.Mm)))!;

        Assert.That(error.Error, Is.EqualTo(MemslotError.SizeChange));
        Assert.That(vm.Mmu.Memslots.Generation, Is.EqualTo(generation));
        Assert.That(vm.Mmu.Ept.Read(TestVm.GpaOf(1).Gfn).IsPresent, Is.True);
        Assert.That(vm.Mmu.Stats.MemslotZaps, Is.Zero);
    }

    /// <summary>
    /// vCPU threads read and write guest memory through their TLBs and the walker while the host thread deletes,
    /// recreates over other memory, moves and recreates read-only the slot they use. After each change returns, no
    /// access that starts later may reach the old frames or break the new slot's rules, and the auditor is clean.
    /// </summary>
    [Test]
    public void MemslotChangesUnderRunningVcpusNeverLeaveAStaleMapping([Values(3, 4)] int seed) => Race(seed, changes: 200);

    /// <summary>The same race, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressMemslotChangesUnderRunningVcpus([Range(1, 4)] int seed) => Race(seed * 7919, changes: 5_000);

    private const int SlotPages = 16;
    private static readonly Gpa Home = new(0x100_0000);
    private static readonly Gpa Away = new(0x200_0000);

    /// <summary>What the slot looks like between changes.</summary>
    private enum Layout
    {
        /// <summary>No slot: every access is an MMIO exit.</summary>
        Absent,

        /// <summary>At <see cref="Home"/> over memory A, writable.</summary>
        HomeOverA,

        /// <summary>At <see cref="Home"/> over memory B, writable.</summary>
        HomeOverB,

        /// <summary>Moved to <see cref="Away"/> over memory B; <see cref="Home"/> is MMIO.</summary>
        AwayOverB,

        /// <summary>At <see cref="Home"/> over memory A, read-only: reads see A, writes exit.</summary>
        HomeOverAReadOnly,
    }

    private static void Race(int seed, int changes)
    {
        using var vm = new TestVm(pages: 4);
        var memoryA = vm.Mm.Mmap(SlotPages * Page, Protection.Read | Protection.Write);
        var memoryB = vm.Mm.Mmap(SlotPages * Page, Protection.Read | Protection.Write);
        for (ulong page = 0; page < SlotPages; page++)
        {
            vm.Mm.Write(memoryA + (page * Page), Stamp('A', page));
            vm.Mm.Write(memoryB + (page * Page), Stamp('B', page));
        }

        var backing = new HostProcessBacking(vm.Mm);
        vm.Mmu.SetMemoryRegion(1, MemslotFlags.None, Home, SlotPages * Page, memoryA, backing);

        // state = (change number << 8) | (layout << 1) | 1 while a change is in flight: every change gives a new value,
        // so an access that saw the same value before and after ran entirely inside one settled layout.
        long state = Settled(0, Layout.HomeOverA);
        var stop = false;
        var problems = new ConcurrentQueue<string>();
        long checkedAccesses = 0;
        var vcpus = Enumerable.Range(0, 2).Select(id => new Thread(() =>
            RunVcpu(vm, id, seed, () => Volatile.Read(ref state), () => Volatile.Read(ref stop), problems, ref checkedAccesses))).ToList();
        vcpus.ForEach(t => t.Start());

        var random = new Random(seed);
        var layout = Layout.HomeOverA;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            for (var i = 0; (i < changes || (Interlocked.Read(ref checkedAccesses) < 2000 && DateTime.UtcNow < deadline)) && problems.IsEmpty; i++)
            {
                var next = NextLayout(layout, random);
                Volatile.Write(ref state, Settled(i + 1, layout) | 1);
                Apply(vm, layout, next, memoryA, memoryB, backing);
                layout = next;
                Volatile.Write(ref state, Settled(i + 1, layout));

                foreach (var violation in MmuAuditor.Check(vm.Mmu))
                {
                    problems.Enqueue($"after change {i} to {layout}: {violation}");
                }

                Thread.Yield();
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            vcpus.ForEach(t => t.Join());
        }

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
        Assert.That(Interlocked.Read(ref checkedAccesses), Is.GreaterThan(1000), "accesses checked against a settled layout");
        Assert.That(vm.Mmu.Stats.MemslotZaps, Is.GreaterThan(0));
        Assert.That(vm.Mmu.Stats.DirtyOrphaned, Is.Zero);
    }

    private static long Settled(long change, Layout layout) => (change << 8) | ((long)layout << 1);

    private static Layout LayoutOf(long state) => (Layout)((state >> 1) & 0x7F);

    private static Layout NextLayout(Layout current, Random random) => current switch
    {
        Layout.Absent => random.Next(3) switch
        {
            0 => Layout.HomeOverA,
            1 => Layout.HomeOverB,
            _ => Layout.HomeOverAReadOnly,
        },
        Layout.HomeOverB => random.Next(2) == 0 ? Layout.AwayOverB : Layout.Absent,
        Layout.AwayOverB => random.Next(2) == 0 ? Layout.HomeOverB : Layout.Absent,
        _ => Layout.Absent,
    };

    /// <summary>One memslot call per step: delete, create (over A, B or A read-only) or move.</summary>
    private static void Apply(TestVm vm, Layout from, Layout to, Hva memoryA, Hva memoryB, IGuestMemoryBacking backing)
    {
        var size = SlotPages * Page;
        var change = to switch
        {
            Layout.Absent => vm.Mmu.DeleteMemoryRegion(1),
            Layout.HomeOverA => vm.Mmu.SetMemoryRegion(1, MemslotFlags.None, Home, size, memoryA, backing),
            Layout.HomeOverB => vm.Mmu.SetMemoryRegion(1, MemslotFlags.None, Home, size, memoryB, backing),
            Layout.AwayOverB => vm.Mmu.SetMemoryRegion(1, MemslotFlags.None, Away, size, memoryB, backing),
            _ => vm.Mmu.SetMemoryRegion(1, MemslotFlags.ReadOnly, Home, size, memoryA, backing),
        };
        var expected = to == Layout.Absent ? MemslotChangeKind.Deleted
            : (from, to) is (Layout.HomeOverB, Layout.AwayOverB) or (Layout.AwayOverB, Layout.HomeOverB) ? MemslotChangeKind.Moved
            : MemslotChangeKind.Created;
        if (change.Kind != expected)
        {
            throw new InvalidOperationException($"{from} -> {to} was {change.Kind}, expected {expected}");
        }
    }

    /// <summary>
    /// A vCPU with paging off: reads (and sometimes writes) a random page at <see cref="Home"/> or <see cref="Away"/>.
    /// An access that both started and ended in one settled state must match that layout exactly.
    /// </summary>
    private static void RunVcpu(TestVm vm, int id, int seed, Func<long> state, Func<bool> stop, ConcurrentQueue<string> problems, ref long checkedAccesses)
    {
        var random = new Random((seed * 100) + id);
        using var cpu = new MmuContext(vm.Mmu, id, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        var buffer = new byte[StampBytes];
        try
        {
            while (!stop())
            {
                cpu.Port.ServiceRequests(); // instruction-block boundary
                var page = (ulong)random.Next(SlotPages);
                var away = random.Next(4) == 0;
                var write = random.Next(6) == 0;
                var gva = new Gva((away ? Away : Home).Value + (page * Page) + StampBytes); // writes go beside the stamp
                var before = state();
                var result = write ? cpu.Write(gva, new byte[] { 0xEE }) : cpu.Read(new Gva(gva.Value - StampBytes), buffer);
                var after = state();
                if (before != after || (before & 1) != 0)
                {
                    continue; // the layout changed during the access: either side's answer is right
                }

                Interlocked.Increment(ref checkedAccesses);
                var expected = Expect(LayoutOf(before), away, write, page);
                var actual = !result.IsOk ? result.Status.ToString() : write ? "written" : Describe(buffer);
                if (actual != expected)
                {
                    problems.Enqueue($"vCPU {id}: {(write ? "write" : "read")} of page {page} at {(away ? "Away" : "Home")} in layout {LayoutOf(before)} gave {actual}, expected {expected}");
                }
            }
        }
        catch (Exception e)
        {
            problems.Enqueue($"vCPU {id}: {e}");
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    private static string Expect(Layout layout, bool away, bool write, ulong page)
    {
        var mapped = (layout, away) switch
        {
            (Layout.HomeOverA or Layout.HomeOverAReadOnly, false) => 'A',
            (Layout.HomeOverB, false) => 'B',
            (Layout.AwayOverB, true) => 'B',
            _ => '-',
        };
        if (mapped == '-' || (write && layout == Layout.HomeOverAReadOnly))
        {
            return nameof(TranslationStatus.EptMmio);
        }

        return write ? "written" : $"{mapped}{page}";
    }

    private const int StampBytes = 16;

    private static byte[] Stamp(char memory, ulong page)
    {
        var stamp = new byte[StampBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(stamp, memory);
        BinaryPrimitives.WriteUInt64LittleEndian(stamp.AsSpan(8), page);
        return stamp;
    }

    private static string Describe(ReadOnlySpan<byte> stamp) =>
        $"{(char)BinaryPrimitives.ReadUInt64LittleEndian(stamp)}{BinaryPrimitives.ReadUInt64LittleEndian(stamp[8..])}";
}

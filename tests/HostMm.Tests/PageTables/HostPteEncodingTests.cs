using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class HostPteEncodingTests
{
    private static readonly ulong[] Slots = [0, 1, 0x12345, HostPteEncoding.MaxSwapSlot];
    private static readonly ulong[] Pfns = [0, 0x1234, Pfn.MaxValue];

    [TestCaseSource(nameof(Slots))]
    public void Swap_RoundTripsTheSlotAndNeverLooksPresentOrNone(ulong slot)
    {
        var pte = HostPteEncoding.MakeSwap(slot);

        Assert.That(pte.IsPresent, Is.False);
        Assert.That(pte.IsNone, Is.False);
        Assert.That(HostPteEncoding.Classify(pte), Is.EqualTo(HostPteKind.Swap));
        Assert.That(HostPteEncoding.SwapSlotOf(pte), Is.EqualTo(slot));
    }

    [Test]
    public void Swap_SlotBeyondFortyBits_IsRejectedNamingTheSlot()
    {
        var slot = HostPteEncoding.MaxSwapSlot + 1;
        Assert.That(
            () => HostPteEncoding.MakeSwap(slot),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains(slot.ToString()));
    }

    [Test]
    public void Migration_RoundTripsPfnWritableYoungAndDirty([ValueSource(nameof(Pfns))] ulong pfn, [Values] bool writable, [Values] bool young, [Values] bool dirty)
    {
        var pte = HostPteEncoding.MakeMigration(new Pfn(pfn), writable, young, dirty);

        Assert.That(pte.IsPresent, Is.False);
        Assert.That(pte.IsNone, Is.False);
        Assert.That(HostPteEncoding.Classify(pte), Is.EqualTo(HostPteKind.Migration));
        Assert.That(HostPteEncoding.MigrationPfn(pte), Is.EqualTo(new Pfn(pfn)));
        Assert.That(HostPteEncoding.IsMigrationWritable(pte), Is.EqualTo(writable));
        Assert.That(pte.IsAccessed, Is.EqualTo(young));
        Assert.That(pte.IsDirty, Is.EqualTo(dirty));
    }

    [Test]
    public void Migration_PfnBeyondFortyBits_IsRejected()
    {
        Assert.That(
            () => HostPteEncoding.MakeMigration(new Pfn(Pfn.MaxValue + 1), writable: true, young: false, dirty: false),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("10000000000"));
    }

    [Test]
    public void ProtNone_KeepsPfnAndAccessedDirty_AndRestoresWithTheNewFlags()
    {
        var present = HostPte.Present(
            new Pfn(0xABCDE),
            HostPte.WritableBit | HostPte.UserBit | HostPte.AccessedBit | HostPte.DirtyBit | HostPte.NoExecuteBit);

        var protNone = HostPteEncoding.MakeProtNone(present);

        Assert.That(protNone.IsPresent, Is.False);
        Assert.That(protNone.IsNone, Is.False);
        Assert.That(HostPteEncoding.Classify(protNone), Is.EqualTo(HostPteKind.ProtNone));
        Assert.That(HostPteEncoding.ProtNonePfn(protNone), Is.EqualTo(new Pfn(0xABCDE)));
        Assert.That(protNone.IsAccessed && protNone.IsDirty, Is.True);
        Assert.That(protNone.IsWritable || protNone.IsNoExecute, Is.False);

        var restored = HostPteEncoding.RestoreFromProtNone(protNone, HostPte.UserBit);

        Assert.That(restored, Is.EqualTo(HostPte.Present(new Pfn(0xABCDE), HostPte.UserBit | HostPte.AccessedBit | HostPte.DirtyBit)));
    }

    [Test]
    public void ProtNone_OfAClean_OldEntry_RestoresClean()
    {
        var protNone = HostPteEncoding.MakeProtNone(HostPte.Present(new Pfn(7), HostPte.WritableBit));

        var restored = HostPteEncoding.RestoreFromProtNone(protNone, HostPte.WritableBit | HostPte.UserBit);

        Assert.That(restored, Is.EqualTo(HostPte.Present(new Pfn(7), HostPte.WritableBit | HostPte.UserBit)));
    }

    [Test]
    public void ProtNone_OfANonPresentEntry_IsRejected()
    {
        Assert.That(
            () => HostPteEncoding.MakeProtNone(HostPteEncoding.MakeSwap(3)),
            Throws.TypeOf<InvalidHostPteException>().With.Message.Contains("swap slot 0x3").And.Message.Contains("only a present entry"));
    }

    [Test]
    public void RestoreFromProtNone_FlagsInThePfnField_AreRejected()
    {
        var protNone = HostPteEncoding.MakeProtNone(HostPte.Present(new Pfn(7), 0));

        Assert.That(
            () => HostPteEncoding.RestoreFromProtNone(protNone, 0x1000),
            Throws.ArgumentException.With.Message.Contains("0x1000").And.Message.Contains("12..51"));
    }

    [Test]
    public void Accessors_OfTheWrongKind_AreRejectedNamingTheEntry()
    {
        var swap = HostPteEncoding.MakeSwap(9);
        var migration = HostPteEncoding.MakeMigration(new Pfn(5), writable: false, young: false, dirty: false);
        var present = HostPte.Present(new Pfn(5), HostPte.WritableBit);

        Assert.That(() => HostPteEncoding.SwapSlotOf(migration), Throws.TypeOf<InvalidHostPteException>().With.Message.Contains("migration pfn:0x5").And.Message.Contains("not a swap entry"));
        Assert.That(() => HostPteEncoding.MigrationPfn(swap), Throws.TypeOf<InvalidHostPteException>().With.Message.Contains("not a migration entry"));
        Assert.That(() => HostPteEncoding.IsMigrationWritable(present), Throws.TypeOf<InvalidHostPteException>());
        Assert.That(() => HostPteEncoding.ProtNonePfn(HostPte.None), Throws.TypeOf<InvalidHostPteException>().With.Message.StartsWith("none"));
        Assert.That(() => HostPteEncoding.RestoreFromProtNone(present, 0), Throws.TypeOf<InvalidHostPteException>());
    }

    [Test]
    public void Classify_NoneAndPresent()
    {
        Assert.That(HostPteEncoding.Classify(HostPte.None), Is.EqualTo(HostPteKind.None));
        Assert.That(HostPteEncoding.Classify(HostPte.Present(new Pfn(0), 0)), Is.EqualTo(HostPteKind.Present));
    }

    [TestCase(0x10UL, TestName = "kind 0 with a bit set")]
    [TestCase(0xEUL, TestName = "kind 7")]
    [TestCase(0xAUL, TestName = "kind 5")]
    [TestCase(0x22UL, TestName = "swap with the accessed bit")]
    [TestCase(0x8000_0000_0000_0004UL, TestName = "migration with NX")]
    [TestCase(0x0010_0000_0000_0008UL, TestName = "protnone with bit 52")]
    public void Classify_CorruptNonPresentValue_IsRejectedNamingTheValue(ulong value)
    {
        Assert.That(
            () => HostPteEncoding.Classify(new HostPte(value)),
            Throws.TypeOf<InvalidHostPteException>().With.Message.Contains($"0x{value:x}").And.Message.Contains("corrupt"));
    }

    [Test]
    public void Describe_NamesEachKind()
    {
        Assert.That(HostPteEncoding.Describe(HostPte.None), Is.EqualTo("none"));
        Assert.That(HostPteEncoding.Describe(HostPteEncoding.MakeSwap(0x12)), Does.EndWith("swap slot 0x12"));
        Assert.That(
            HostPteEncoding.Describe(HostPteEncoding.MakeMigration(new Pfn(0x34), writable: true, young: true, dirty: true)),
            Does.EndWith("migration pfn:0x34 [W A D]"));
        Assert.That(
            HostPteEncoding.Describe(HostPteEncoding.MakeProtNone(HostPte.Present(new Pfn(0x56), HostPte.AccessedBit))),
            Does.EndWith("protnone pfn:0x56 [- A]"));
        Assert.That(HostPteEncoding.Describe(new HostPte(0xE)), Does.Contain("corrupt"));
    }
}

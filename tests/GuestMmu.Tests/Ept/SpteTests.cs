using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

public sealed class SpteTests
{
    [Test]
    public void BitPositions_AreKvmsEptLayout()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Spte.ReadableBit, Is.EqualTo(1UL << 0));
            Assert.That(Spte.WritableBit, Is.EqualTo(1UL << 1));
            Assert.That(Spte.ExecutableBit, Is.EqualTo(1UL << 2));
            Assert.That(Spte.MemoryTypeMask, Is.EqualTo(0b111UL << 3));
            Assert.That(Spte.IgnorePatBit, Is.EqualTo(1UL << 6));
            Assert.That(Spte.LargePageBit, Is.EqualTo(1UL << 7));
            Assert.That(Spte.AccessedBit, Is.EqualTo(1UL << 8));
            Assert.That(Spte.DirtyBit, Is.EqualTo(1UL << 9));
            Assert.That(Spte.MmuPresentBit, Is.EqualTo(1UL << 11));
            Assert.That(Spte.PfnMask, Is.EqualTo(((1UL << 40) - 1) << 12));
            Assert.That(Spte.SavedReadableBit, Is.EqualTo(1UL << 54));
            Assert.That(Spte.SavedExecutableBit, Is.EqualTo(1UL << 55));
            Assert.That(Spte.HostWritableBit, Is.EqualTo(1UL << 57));
            Assert.That(Spte.MmuWritableBit, Is.EqualTo(1UL << 58));
            Assert.That(Spte.Empty.Value, Is.Zero);
        });
    }

    [Test]
    public void Leaf_WritableExecutableLargeAccessed_EncodesEveryRequestedBit()
    {
        var spte = Spte.Leaf(new Pfn(0x12_3456_789A), writable: true, executable: true, large: true, accessed: true);
        const ulong Expected = 1UL << 0 | 1UL << 1 | 1UL << 2 | 6UL << 3 | 1UL << 6 | 1UL << 7 | 1UL << 8 | 1UL << 11
            | 0x12_3456_789AUL << 12 | 1UL << 57 | 1UL << 58;
        Assert.That(spte.Value, Is.EqualTo(Expected));
        Assert.Multiple(() =>
        {
            Assert.That(spte.IsPresent, Is.True);
            Assert.That(spte.IsReadable, Is.True);
            Assert.That(spte.IsWritable, Is.True);
            Assert.That(spte.IsExecutable, Is.True);
            Assert.That(spte.MemoryType, Is.EqualTo(Spte.MemoryTypeWriteBack));
            Assert.That(spte.IgnoresPat, Is.True);
            Assert.That(spte.IsLargePage, Is.True);
            Assert.That(spte.IsAccessed, Is.True);
            Assert.That(spte.IsDirty, Is.False);
            Assert.That(spte.IsHostWritable, Is.True);
            Assert.That(spte.IsMmuWritable, Is.True);
            Assert.That(spte.IsAccessTracked, Is.False);
            Assert.That(spte.Pfn, Is.EqualTo(new Pfn(0x12_3456_789A)));
        });
    }

    [Test]
    public void Leaf_ReadOnly_HasNoWriteBitsAndNoOptionalBits()
    {
        var spte = Spte.Leaf(new Pfn(5), writable: false, executable: false, large: false, accessed: false);
        Assert.That(spte.Value, Is.EqualTo(1UL | 6UL << 3 | 1UL << 6 | 1UL << 11 | 5UL << 12));
        Assert.That(spte.IsWritable || spte.IsHostWritable || spte.IsMmuWritable, Is.False);
    }

    [Test]
    public void EachDecoderReadsOnlyItsOwnBit()
    {
        var decoders = new (ulong Bit, Func<Spte, bool> Read)[]
        {
            (Spte.ReadableBit, s => s.IsReadable),
            (Spte.WritableBit, s => s.IsWritable),
            (Spte.ExecutableBit, s => s.IsExecutable),
            (Spte.IgnorePatBit, s => s.IgnoresPat),
            (Spte.LargePageBit, s => s.IsLargePage),
            (Spte.AccessedBit, s => s.IsAccessed),
            (Spte.DirtyBit, s => s.IsDirty),
            (Spte.MmuPresentBit, s => s.IsPresent),
            (Spte.HostWritableBit, s => s.IsHostWritable),
            (Spte.MmuWritableBit, s => s.IsMmuWritable),
        };
        foreach (var (bit, read) in decoders)
        {
            Assert.That(read(new Spte(bit)), Is.True, $"bit 0x{bit:x} alone");
            Assert.That(read(new Spte(~bit)), Is.False, $"every bit but 0x{bit:x}");
        }

        Assert.That(new Spte(5UL << 3).MemoryType, Is.EqualTo(5));
        Assert.That(new Spte(0xABCUL << 12 | 0xFFF).Pfn, Is.EqualTo(new Pfn(0xABC)));
    }

    [Test]
    public void Leaf_PfnBeyondFortyBits_ThrowsNamingThePfn()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Spte.Leaf(new Pfn(1UL << 40), true, false, false, false));
        Assert.That(ex!.Message, Does.Contain("pfn:0x10000000000").And.Contain("bits 12–51"));
    }

    [Test]
    public void NonLeaf_CarriesTheTableIndexAndAllPermissions()
    {
        var spte = Spte.NonLeaf(0xDEAD_BEEF);
        Assert.That(spte.TableIndex, Is.EqualTo(0xDEAD_BEEFu));
        Assert.That(spte.Value & 0xFFF, Is.EqualTo(Spte.ReadableBit | Spte.WritableBit | Spte.ExecutableBit | Spte.MmuPresentBit));
        Assert.That(spte.IsLeaf(1), Is.True, "every present level-1 entry is a leaf");
        Assert.That(spte.IsLeaf(2), Is.False);
        Assert.That(spte.IsLeaf(3), Is.False);
        Assert.That(spte.IsLeaf(4), Is.False);
    }

    [Test]
    public void IsLeaf_LargeBitCountsAtLevelsTwoAndThreeOnly()
    {
        var large = Spte.Leaf(new Pfn(512), true, true, large: true, accessed: false);
        Assert.That(large.IsLeaf(1), Is.True);
        Assert.That(large.IsLeaf(2), Is.True);
        Assert.That(large.IsLeaf(3), Is.True);
        Assert.That(large.IsLeaf(4), Is.False, "the root level has no leaves");
        Assert.That(Spte.Empty.IsLeaf(1), Is.False, "non-present is never a leaf");
        Assert.Throws<ArgumentOutOfRangeException>(() => large.IsLeaf(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => large.IsLeaf(0));
    }

    [Test]
    public void AccessTrack_SavesRAndX_ClearsRwxAndA_KeepsPresentPfnAndMmuWritable()
    {
        var leaf = Spte.Leaf(new Pfn(77), writable: true, executable: true, large: false, accessed: true);
        var tracked = leaf.MarkAccessTracked();
        Assert.Multiple(() =>
        {
            Assert.That(tracked.IsAccessTracked, Is.True);
            Assert.That(tracked.IsPresent, Is.True, "bit 11 stays: KVM still counts the entry");
            Assert.That(tracked.Value & Spte.PermissionMask, Is.Zero);
            Assert.That(tracked.IsAccessed, Is.False);
            Assert.That(tracked.Value & Spte.SavedReadableBit, Is.Not.Zero);
            Assert.That(tracked.Value & Spte.SavedExecutableBit, Is.Not.Zero);
            Assert.That(tracked.Pfn, Is.EqualTo(new Pfn(77)));
            Assert.That(tracked.IsMmuWritable && tracked.IsHostWritable, Is.True);
        });

        var restored = tracked.RestoreFromAccessTrack();
        Assert.That(restored, Is.EqualTo(leaf.WithoutWritable()), "R, X and A come back; W waits for a separate restore");
        Assert.That(tracked.MarkAccessTracked(), Is.EqualTo(tracked), "tracking twice must not lose the saved bits");
    }

    [Test]
    public void AccessTrack_OfNonExecutableReadOnly_RestoresOnlyR()
    {
        var leaf = Spte.Leaf(new Pfn(3), writable: false, executable: false, large: false, accessed: false);
        var tracked = leaf.MarkAccessTracked();
        Assert.That(tracked.Value & Spte.SavedExecutableBit, Is.Zero);
        Assert.That(tracked.RestoreFromAccessTrack(), Is.EqualTo(leaf.WithAccessed(dirty: false)));
    }

    [Test]
    public void AccessTrack_Misuse_ThrowsNamingTheSpte()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Spte.Empty.MarkAccessTracked());
        Assert.That(ex!.Message, Does.Contain("present").And.Contain("spte:0x0"));
        var leaf = Spte.Leaf(new Pfn(3), false, false, false, false);
        var ex2 = Assert.Throws<InvalidOperationException>(() => leaf.RestoreFromAccessTrack());
        Assert.That(ex2!.Message, Does.Contain("not access-tracked"));
    }

    [Test]
    public void Transforms_TouchOnlyTheirBits()
    {
        var leaf = Spte.Leaf(new Pfn(9), writable: true, executable: false, large: false, accessed: true).WithAccessed(dirty: true);
        Assert.That(leaf.IsDirty, Is.True);
        Assert.That(leaf.WithoutAccessed().Value, Is.EqualTo(leaf.Value & ~Spte.AccessedBit));
        Assert.That(leaf.WithoutWritable().Value, Is.EqualTo(leaf.Value & ~Spte.WritableBit));
        Assert.That(leaf.WithoutWritable().IsMmuWritable, Is.True, "write-protection keeps MMU-writable so W can be restored");
    }

    [Test]
    public void ToString_DecodesTheEntry()
    {
        var text = Spte.Leaf(new Pfn(0x1f), true, true, true, true).WithAccessed(true).ToString();
        Assert.That(text, Does.StartWith("spte:0x").And.Contain("present R W X mt:6 ipat large A D pfn:0x1f host-writable mmu-writable"));
        Assert.That(Spte.Empty.ToString(), Is.EqualTo("spte:0x0[empty]"));
        Assert.That(Spte.Frozen.ToString(), Does.Contain("frozen"));
        Assert.That(Spte.Leaf(new Pfn(1), false, false, false, false).MarkAccessTracked().ToString(), Does.Contain("access-tracked saved-R"));
    }

    [Test]
    public void Frozen_IsNotPresentAndHasNoAccessedDirtyOrPfnBits()
    {
        var frozen = Spte.Frozen;
        Assert.That(frozen.IsPresent || frozen.IsAccessed || frozen.IsDirty, Is.False);
        Assert.That(frozen.Value & (Spte.PfnMask | Spte.PermissionMask), Is.Zero);
        Assert.That(frozen.IsFrozen, Is.True);
    }
}

using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Tests.Vmas;

public sealed class ProtectionRulesTests
{
    [TestCase(Protection.None)]
    [TestCase(Protection.Read)]
    [TestCase(Protection.Read | Protection.Write)]
    [TestCase(Protection.Read | Protection.Execute)]
    [TestCase(Protection.Read | Protection.Write | Protection.Execute)]
    public void ExpressibleProtections_AreValid(Protection protection)
    {
        Assert.That(() => ProtectionRules.Validate(protection, "prot"), Throws.Nothing);
        Assert.That(ProtectionRules.IsValid(protection), Is.True);
    }

    [TestCase(Protection.Write, "-w-")]
    [TestCase(Protection.Execute, "--x")]
    [TestCase(Protection.Write | Protection.Execute, "-wx")]
    public void WriteOrExecuteWithoutRead_IsRejectedSayingX86CannotExpressIt(Protection protection, string rwx)
    {
        var ex = Assert.Throws<InvalidProtectionException>(() => ProtectionRules.Validate(protection, "prot"));
        Assert.That(ex!.Protection, Is.EqualTo(protection));
        Assert.That(ex.ParamName, Is.EqualTo("prot"));
        Assert.That(
            ex.Message,
            Does.Contain(rwx).And.Contain("without Read").And.Contain("x86 page tables cannot express write-only or execute-only"));
        Assert.That(ProtectionRules.IsValid(protection), Is.False);
    }

    [Test]
    public void UndefinedBits_AreRejectedNamingTheBits()
    {
        var bad = Protection.Read | (Protection)0x18;
        var ex = Assert.Throws<InvalidProtectionException>(() => ProtectionRules.Validate(bad, "prot"));
        Assert.That(ex!.Message, Does.Contain("0x19").And.Contain("undefined bits 0x18"));
        Assert.That(ProtectionRules.IsValid(bad), Is.False);
    }

    [TestCase(Protection.None, "---")]
    [TestCase(Protection.Read, "r--")]
    [TestCase(Protection.Read | Protection.Write, "rw-")]
    [TestCase(Protection.Read | Protection.Execute, "r-x")]
    [TestCase(Protection.Read | Protection.Write | Protection.Execute, "rwx")]
    public void ToRwx_FormatsLikeProcMaps(Protection protection, string expected) =>
        Assert.That(ProtectionRules.ToRwx(protection), Is.EqualTo(expected));

    [Test]
    public void AddAndSetProtection_ValidateTheProtection()
    {
        var set = new VmaSet();
        Assert.That(
            () => set.Add(VmaTestSupport.P(0), VmaTestSupport.P(1), Protection.Write, VmaFlags.None),
            Throws.TypeOf<InvalidProtectionException>().With.Property("ParamName").EqualTo("protection"));
        Assert.That(set.Count, Is.Zero);

        var vma = set.Add(VmaTestSupport.P(0), VmaTestSupport.P(1), Protection.Read, VmaFlags.None);
        Assert.That(() => set.SetProtection(vma, Protection.Execute), Throws.TypeOf<InvalidProtectionException>());
        Assert.That(vma.Protection, Is.EqualTo(Protection.Read), "a rejected mprotect changes nothing");
        set.SetProtection(vma, Protection.None);
        Assert.That(vma.Protection, Is.EqualTo(Protection.None));
    }

    [Test]
    public void Flags_UndefinedBitsAndBothHugePageAdvices_AreRejected()
    {
        var set = new VmaSet();
        var both = VmaFlags.HugePage | VmaFlags.NoHugePage;
        Assert.That(
            () => set.Add(VmaTestSupport.P(0), VmaTestSupport.P(1), Protection.Read, both),
            Throws.TypeOf<InvalidVmaFlagsException>().With.Message.Contains("both HugePage and NoHugePage"));
        var vma = set.Add(VmaTestSupport.P(0), VmaTestSupport.P(1), Protection.Read, VmaFlags.Mergeable);
        Assert.That(
            () => set.SetFlags(vma, (VmaFlags)8),
            Throws.TypeOf<InvalidVmaFlagsException>().With.Message.Contains("undefined bits 0x8"));
        Assert.That(vma.Flags, Is.EqualTo(VmaFlags.Mergeable));
        set.SetFlags(vma, VmaFlags.Mergeable | VmaFlags.HugePage);
        Assert.That(vma.Flags, Is.EqualTo(VmaFlags.Mergeable | VmaFlags.HugePage));
    }
}

namespace Hypervisor.Notifier.Tests.Types;

public class AddressTypeTests
{
    [Test]
    public void HvaAlignmentAndArithmetic()
    {
        var address = new Hva(0x1234_5678);
        Assert.That(address.PageAligned, Is.EqualTo(new Hva(0x1234_5000)));
        Assert.That(address.PageAlignedUp, Is.EqualTo(new Hva(0x1234_6000)));
        Assert.That(address.PageOffset, Is.EqualTo(0x678UL));
        Assert.That(address.PageNumber, Is.EqualTo(0x12345UL));
        Assert.That(address.IsPageAligned, Is.False);
        Assert.That(new Hva(0x2000).PageAlignedUp, Is.EqualTo(new Hva(0x2000)));
        Assert.That(new Hva(0x3000) - new Hva(0x1000), Is.EqualTo(0x2000UL));
        Assert.That(new Hva(0x1000) + Paging.PageSize, Is.EqualTo(new Hva(0x2000)));
        Assert.That(new Hva(0x1000) < new Hva(0x2000), Is.True);
        Assert.That(address.ToString(), Is.EqualTo("0x12345678"));
    }

    [Test]
    public void PfnPhysicalAddress()
    {
        Assert.That(new Pfn(3).PhysicalAddress, Is.EqualTo(0x3000UL));
        Assert.That(new Pfn(3) + 2, Is.EqualTo(new Pfn(5)));
        Assert.That(new Pfn(0x1f).ToString(), Is.EqualTo("pfn:0x1f"));
    }

    [Test]
    public void HostPteEncodesPfnAndFlagsInX86Positions()
    {
        var pte = HostPte.Present(new Pfn(0xABCDE), HostPte.WritableBit | HostPte.UserBit | HostPte.NoExecuteBit);

        Assert.That(pte.Value, Is.EqualTo(0x8000_0000_ABCD_E007UL));
        Assert.That(pte.IsPresent && pte.IsWritable && pte.IsNoExecute, Is.True);
        Assert.That(pte.IsAccessed || pte.IsDirty, Is.False);
        Assert.That(pte.Pfn, Is.EqualTo(new Pfn(0xABCDE)));
        Assert.That(pte.With(HostPte.DirtyBit).IsDirty, Is.True);
        Assert.That(pte.Without(HostPte.WritableBit).IsWritable, Is.False);
        Assert.That(pte.ToString(), Does.Contain("[P W U NX]"));
        Assert.That(HostPte.None.IsNone && !HostPte.None.IsPresent, Is.True);
    }

    [Test]
    public void PfnBitsCannotLeakIntoFlags()
    {
        var pte = HostPte.Present(new Pfn(Pfn.MaxValue), 0);
        Assert.That(pte.Pfn, Is.EqualTo(new Pfn(Pfn.MaxValue)));
        Assert.That(pte.IsNoExecute, Is.False);
    }
}

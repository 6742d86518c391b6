using Hypervisor.Notifier.Tests.Support;

namespace Hypervisor.Notifier.Tests.Types;

public class NotifierRangeTests
{
    [Test]
    public void ValidRangeKeepsItsFields()
    {
        var mm = new TestMm();
        var owner = new object();
        var range = new NotifierRange(mm, new Hva(0x1000), new Hva(0x5000), NotifierEvent.Migrate, blockable: false, owner);

        Assert.That(range.Mm, Is.SameAs(mm));
        Assert.That(range.Length, Is.EqualTo(0x4000UL));
        Assert.That(range.Event, Is.EqualTo(NotifierEvent.Migrate));
        Assert.That(range.IsBlockable, Is.False);
        Assert.That(range.Owner, Is.SameAs(owner));
        Assert.That(range.Overlaps(new Hva(0x4000), new Hva(0x6000)), Is.True);
        Assert.That(range.Overlaps(new Hva(0x5000), new Hva(0x6000)), Is.False, "end is exclusive");
        Assert.That(range.ToString(), Does.Contain("Migrate nonblock"));
    }

    [Test]
    public void EmptyOrReversedRangeIsRejectedNamingTheValues()
    {
        var mm = new TestMm();
        Assert.That(() => new NotifierRange(mm, new Hva(0x2000), new Hva(0x2000), NotifierEvent.Clear),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("[0x2000, 0x2000)").And.Message.Contains("end must be above start"));
        Assert.That(() => new NotifierRange(mm, new Hva(0x3000), new Hva(0x2000), NotifierEvent.Clear),
            Throws.TypeOf<InvalidRangeException>());
    }

    [Test]
    public void UnalignedRangeIsRejectedNamingTheRule()
    {
        var mm = new TestMm();
        Assert.That(() => new NotifierRange(mm, new Hva(0x1001), new Hva(0x2000), NotifierEvent.Clear),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x1001").And.Message.Contains("multiples of 4096"));
        Assert.That(() => new NotifierRange(mm, new Hva(0x1000), new Hva(0x2001), NotifierEvent.Clear),
            Throws.TypeOf<InvalidRangeException>());
    }

    [Test]
    public void RangeBeyondTheAddressSpaceAndUndefinedEventsAreRejected()
    {
        var mm = new TestMm();
        Assert.That(() => new NotifierRange(mm, Hva.Zero, Hva.AddressSpaceEnd + Paging.PageSize, NotifierEvent.Unmap),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("beyond the address space end"));
        Assert.That(() => new NotifierRange(mm, Hva.Zero, new Hva(0x1000), (NotifierEvent)99),
            Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => new NotifierRange(null!, Hva.Zero, new Hva(0x1000), NotifierEvent.Unmap),
            Throws.TypeOf<ArgumentNullException>());
    }

    [Test]
    public void WholeAddressSpaceRangeIsValid()
    {
        var range = new NotifierRange(new TestMm(), Hva.Zero, Hva.AddressSpaceEnd, NotifierEvent.Release);
        Assert.That(range.Length, Is.EqualTo(1UL << 57));
    }
}

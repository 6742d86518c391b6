using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Notifier.Tests.Types;

/// <summary>
/// Input exceptions of the notifier layer carry <see cref="IInputError"/> with the <see cref="NotifierRule"/>
/// they broke; exceptions for broken contracts (bugs) do not.
/// </summary>
public class InputErrorTests
{
    private static readonly Type[] s_inputErrors =
    [
        typeof(InvalidRangeException), typeof(DuplicateCookieException), typeof(UnknownCookieException),
    ];

    private static readonly Type[] s_bugs =
    [
        typeof(NotifierContractException), typeof(SubscriptionStateException), typeof(MmExitedException),
    ];

    [Test]
    public void EveryExceptionTypeOfTheLayerIsClassifiedAndOnlyInputErrorsCarryTheMarker()
    {
        var declared = typeof(IInputError).Assembly.GetTypes().Where(t => typeof(Exception).IsAssignableFrom(t)).ToArray();

        Assert.That(declared, Is.EquivalentTo(s_inputErrors.Concat(s_bugs)), "a new exception type must be classified as input or bug here");
        Assert.That(s_inputErrors, Is.All.Matches<Type>(t => typeof(IInputError).IsAssignableFrom(t)));
        Assert.That(s_bugs, Is.All.Matches<Type>(t => !typeof(IInputError).IsAssignableFrom(t)));
    }

    [TestCase(0x2000UL, 0x1000UL, NotifierRule.EmptyOrReversedRange)]
    [TestCase(0x1000UL, 0x1000UL, NotifierRule.EmptyOrReversedRange)]
    [TestCase(0x1001UL, 0x2000UL, NotifierRule.UnalignedRange)]
    [TestCase(0x1000UL, (1UL << 57) + 0x1000, NotifierRule.OutsideAddressSpace)]
    public void ABadRangeReportsTheRuleItBroke(ulong start, ulong end, NotifierRule rule)
    {
        var mm = new TestMm();

        var error = Assert.Throws<InvalidRangeException>(() => _ = new NotifierRange(mm, new Hva(start), new Hva(end), NotifierEvent.Clear))!;

        Assert.That(error.Rule, Is.EqualTo(rule));
        Assert.That(((IInputError)error).Rule, Is.EqualTo(rule));
    }

    [Test]
    public void ChainAndIntervalRangeChecksReportTheirRules()
    {
        var mm = new TestMm();

        Assert.That(RuleOf(() => mm.Notifiers.ClearYoung(Ranges.Page(2), Ranges.Page(1))), Is.EqualTo(NotifierRule.EmptyOrReversedRange));
        Assert.That(RuleOf(() => mm.Notifiers.InsertInterval(Ranges.Page(1), 0, new Tracing.NotifierEventRecorder())), Is.EqualTo(NotifierRule.EmptyOrReversedRange));
        Assert.That(RuleOf(() => mm.Notifiers.InsertInterval(new Hva(0x1001), Paging.PageSize, new Tracing.NotifierEventRecorder())), Is.EqualTo(NotifierRule.UnalignedRange));
    }

    [Test]
    public void ARangeErrorWithoutANamedRuleReportsTheCatchAll()
    {
        IInputError error = new InvalidRangeException("gfn range [5, 5) is empty or reversed: end must be above start");

        Assert.That(error.Rule, Is.EqualTo(NotifierRule.InvalidRange));
    }

    [Test]
    public void CookieErrorsReportTheirRules()
    {
        var mm = new TestMm();
        using var channel = UserEventChannel.Open(mm);
        channel.RegisterRegion(7, Ranges.Page(0), Ranges.Page(1));

        Assert.That(RuleOf(() => channel.RegisterRegion(7, Ranges.Page(2), Ranges.Page(3))), Is.EqualTo(NotifierRule.DuplicateCookie));
        Assert.That(RuleOf(() => channel.UnregisterRegion(8)), Is.EqualTo(NotifierRule.UnknownCookie));
    }

    [Test]
    public void BrokenContractsDoNotCarryTheMarker()
    {
        var mm = new TestMm();
        var subscription = mm.Notifiers.Register(new Tracing.NotifierEventRecorder());
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.Unregister(subscription);
        mm.Notifiers.Release();

        AssertBug<NotifierContractException>(() => mm.Notifiers.InvalidateRangeEnd(ref range));
        AssertBug<SubscriptionStateException>(() => mm.Notifiers.Unregister(subscription));
        AssertBug<MmExitedException>(mm.Notifiers.Release);
    }

    private static Enum RuleOf(TestDelegate action)
    {
        var error = Assert.Catch(action)!;
        Assert.That(error, Is.InstanceOf<IInputError>(), $"{error.GetType().Name} is bad input and must carry the marker");
        return ((IInputError)error).Rule;
    }

    private static void AssertBug<TException>(TestDelegate action)
        where TException : Exception
    {
        var error = Assert.Throws<TException>(action)!;
        Assert.That(error, Is.Not.InstanceOf<IInputError>(), $"{typeof(TException).Name} reports a bug and must not carry the input marker");
    }
}

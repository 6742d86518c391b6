using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

public class AgingAndTlbTests
{
    [Test]
    public void ClearFlushYoungOrsEveryAnswerAndCallsEverySubscriber()
    {
        var mm = new TestMm();
        var old = new YoungNotifier(answer: false);
        var young = new YoungNotifier(answer: true);
        mm.Notifiers.Register(old);
        mm.Notifiers.Register(young); // called first

        Assert.That(mm.Notifiers.ClearFlushYoung(Ranges.Page(0), Ranges.Page(1)), Is.True);
        Assert.That(old.Calls, Is.EqualTo(1), "clearing must reach every subscriber even after a young answer");
        Assert.That(mm.Notifiers.ClearYoung(Ranges.Page(0), Ranges.Page(1)), Is.True);
        Assert.That(old.Calls, Is.EqualTo(2));
    }

    [Test]
    public void YoungOpsAnswerFalseWhenNobodyIsYoung()
    {
        var mm = new TestMm();
        mm.Notifiers.Register(new YoungNotifier(answer: false));
        mm.Notifiers.Register(new YoungNotifier(answer: false));

        Assert.That(mm.Notifiers.ClearFlushYoung(Ranges.Page(0), Ranges.Page(1)), Is.False);
        Assert.That(mm.Notifiers.ClearYoung(Ranges.Page(0), Ranges.Page(1)), Is.False);
        Assert.That(mm.Notifiers.TestYoung(Ranges.Page(0)), Is.False);
        Assert.That(mm.Notifiers.Stats.YoungHits, Is.Zero);
        Assert.That(mm.Notifiers.Stats.YoungCalls, Is.EqualTo(3));
    }

    [Test]
    public void TestYoungStopsAtTheFirstYoungAnswer()
    {
        var mm = new TestMm();
        var last = new YoungNotifier(answer: false);
        var first = new YoungNotifier(answer: true);
        mm.Notifiers.Register(last);
        mm.Notifiers.Register(first);

        Assert.That(mm.Notifiers.TestYoung(Ranges.Page(3)), Is.True);
        Assert.That(first.Calls, Is.EqualTo(1));
        Assert.That(last.Calls, Is.Zero, "test_young stops at the first young answer");
    }

    [Test]
    public void RecorderSeesAgingAddressesAndAnswers()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder { YoungAnswer = true };
        mm.Notifiers.Register(recorder);

        Assert.That(mm.Notifiers.TestYoung(new Hva(0x5000)), Is.True);
        Assert.That(recorder.Events[0].Kind, Is.EqualTo(NotifierTraceKind.TestYoung));
        Assert.That(recorder.Events[0].Start, Is.EqualTo(new Hva(0x5000)));
    }

    [Test]
    public void EmptyAgingRangeIsRejected()
    {
        var mm = new TestMm();
        Assert.That(() => mm.Notifiers.ClearFlushYoung(Ranges.Page(2), Ranges.Page(2)),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("end must be above start"));
    }

    [Test]
    public void ChangePteIsForwardedWithThePte()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        var pte = HostPte.Present(new Pfn(0x42), HostPte.UserBit);

        mm.Notifiers.ChangePte(new Hva(0x7000), pte);

        Assert.That(recorder.Events.Single().Kind, Is.EqualTo(NotifierTraceKind.ChangePte));
        Assert.That(recorder.Events.Single().Pte, Is.EqualTo(pte));
        Assert.That(recorder.Events.Single().Pfn, Is.EqualTo(new Pfn(0x42)));
        Assert.That(mm.Notifiers.Stats.ChangePtes, Is.EqualTo(1));
    }

    [Test]
    public void SecondaryTlbInvalidationReachesTlbSubscribersOnly()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        mm.Notifiers.Register(new SecondaryTlbRecorder(recorder));

        mm.Notifiers.InvalidateSecondaryTlbs(Ranges.Page(1), Ranges.Page(9));

        Assert.That(recorder.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateSecondaryTlbs }));
        Assert.That(recorder.Events[0].End, Is.EqualTo(Ranges.Page(9)));
    }

    [Test]
    public void TlbSubscriberMayNotAlsoTakeRangeInvalidations()
    {
        var mm = new TestMm();
        Assert.That(() => mm.Notifiers.Register(new TlbAndStart()),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("InvalidateSecondaryTlbs"));
        Assert.That(mm.Notifiers.SubscriberCount, Is.Zero);
    }

    private sealed class TlbAndStart : IMmuNotifier
    {
        public bool InvalidateRangeStart(in NotifierRange range) => true;

        public void InvalidateSecondaryTlbs(IMm mm, Hva start, Hva end)
        {
        }
    }
}

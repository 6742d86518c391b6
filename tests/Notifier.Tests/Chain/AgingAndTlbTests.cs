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

    [Test]
    public void ClearFlushYoungBitmapAsksAPagewiseSubscriberPageByPageWithTheFlushingOp()
    {
        var mm = new TestMm();
        var pagewise = new PagewiseYoung(2, 5, 70);
        mm.Notifiers.Register(pagewise);
        Assert.That(mm.Notifiers.SubscriberCount, Is.EqualTo(1));
        var young = new[] { ulong.MaxValue, ulong.MaxValue, 0xF0UL };

        Assert.That(mm.Notifiers.ClearFlushYoungBitmap(Ranges.Page(10), Ranges.Page(10 + 72), young), Is.True);

        Assert.That(young[0], Is.EqualTo((1UL << 2) | (1UL << 5)), "the range's words are overwritten, then the young pages set");
        Assert.That(young[1], Is.EqualTo(1UL << (70 - 64)));
        Assert.That(young[2], Is.EqualTo(0xF0UL), "words past the range are left alone");
        Assert.That(pagewise.FlushCalls, Is.EqualTo(72), "one clear_flush_young per page");
        Assert.That(pagewise.NoFlushCalls, Is.Zero, "the flushing op must not fall back to clear_young");
        Assert.That(mm.Notifiers.Stats.YoungCalls, Is.EqualTo(1));
        Assert.That(mm.Notifiers.Stats.YoungHits, Is.EqualTo(1));
    }

    [Test]
    public void ClearFlushYoungBitmapOrsABitmapSubscriberWithAPagewiseOne()
    {
        var mm = new TestMm();
        var bitmap = new BitmapYoung(0b1001UL);
        var pagewise = new PagewiseYoung(1);
        var bitmapSubscription = mm.Notifiers.Register(bitmap);
        mm.Notifiers.Register(pagewise);
        var young = new ulong[1];

        Assert.That(mm.Notifiers.ClearFlushYoungBitmap(Ranges.Page(0), Ranges.Page(8), young), Is.True);

        Assert.That(young[0], Is.EqualTo(0b1011UL));
        Assert.That(bitmap.FlushCalls, Is.EqualTo(1), "a subscriber overriding the op is asked once for the range");
        Assert.That(bitmap.NoFlushCalls, Is.Zero);
        Assert.That(pagewise.FlushCalls, Is.EqualTo(8));
        Assert.That(bitmapSubscription.Ops, Is.EqualTo(MmuNotifierOps.ClearFlushYoungBitmap | MmuNotifierOps.ClearYoungBitmap));
    }

    [Test]
    public void ClearFlushYoungBitmapAnswersFalseWhenNobodyIsYoung()
    {
        var mm = new TestMm();
        mm.Notifiers.Register(new PagewiseYoung());
        mm.Notifiers.Register(new BitmapYoung(0));
        var young = new[] { ulong.MaxValue };

        Assert.That(mm.Notifiers.ClearFlushYoungBitmap(Ranges.Page(0), Ranges.Page(64), young), Is.False);
        Assert.That(young[0], Is.Zero);
        Assert.That(mm.Notifiers.Stats.YoungHits, Is.Zero);
    }

    [Test]
    public void ClearFlushYoungBitmapRejectsUnalignedRangesAndShortBitmaps()
    {
        var mm = new TestMm();
        Assert.That(() => mm.Notifiers.ClearFlushYoungBitmap(new Hva(0x1800), Ranges.Page(4), new ulong[1]),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("not page-aligned"));
        Assert.That(() => mm.Notifiers.ClearFlushYoungBitmap(Ranges.Page(0), Ranges.Page(65), new ulong[1]),
            Throws.ArgumentException.With.Message.Contains("65"));
        Assert.That(() => mm.Notifiers.ClearFlushYoungBitmap(Ranges.Page(2), Ranges.Page(2), new ulong[1]),
            Throws.TypeOf<InvalidRangeException>());
    }

    private sealed class TlbAndStart : IMmuNotifier
    {
        public bool InvalidateRangeStart(in NotifierRange range) => true;

        public void InvalidateSecondaryTlbs(IMm mm, Hva start, Hva end)
        {
        }
    }

    /// <summary>Answers young for the listed page indexes of each range it is asked about, counting flushing and non-flushing calls.</summary>
    private sealed class PagewiseYoung(params int[] youngPages) : IMmuNotifier
    {
        private Hva _rangeStart = new(ulong.MaxValue);

        public int FlushCalls { get; private set; }

        public int NoFlushCalls { get; private set; }

        public bool ClearFlushYoung(IMm mm, Hva start, Hva end)
        {
            FlushCalls++;
            return IsYoung(start);
        }

        public bool ClearYoung(IMm mm, Hva start, Hva end)
        {
            NoFlushCalls++;
            return IsYoung(start);
        }

        private bool IsYoung(Hva page)
        {
            if (page < _rangeStart)
            {
                _rangeStart = page; // the bitmap default asks in address order from the range's start
            }

            return youngPages.Contains((int)((page - _rangeStart) >> Paging.PageShift));
        }
    }

    /// <summary>Overrides both bitmap ops, OR-ing a fixed pattern into the first word.</summary>
    private sealed class BitmapYoung(ulong pattern) : IMmuNotifier
    {
        public int FlushCalls { get; private set; }

        public int NoFlushCalls { get; private set; }

        public void ClearFlushYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young)
        {
            FlushCalls++;
            young[0] |= pattern;
        }

        public void ClearYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young)
        {
            NoFlushCalls++;
            young[0] |= pattern;
        }
    }
}

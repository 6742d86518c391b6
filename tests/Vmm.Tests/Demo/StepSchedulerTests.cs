using Hypervisor.Notifier.Tracing;
using Hypervisor.Vmm.Demo.History;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary><see cref="StepScheduler"/>: actors take exactly the steps they are given, in the order given.</summary>
public sealed class StepSchedulerTests
{
    [Test]
    public void ActorsInterleaveExactlyAsTheStepsSay()
    {
        for (var round = 0; round < 20; round++)
        {
            var scheduler = new StepScheduler(new NotifierEventRecorder());
            var order = new List<string>();
            void Append(string item)
            {
                lock (order)
                {
                    order.Add(item);
                }
            }

            var a = scheduler.Start("a", () =>
            {
                Append("a1");
                scheduler.Hold(HistoryPoint.VcpuResolved);
                Append("a2");
            });
            var b = scheduler.Start("b", () =>
            {
                Append("b1");
                scheduler.Hold(HistoryPoint.HostPteCleared);
                Append("b2");
            });

            scheduler.RunUntil(b, HistoryPoint.HostPteCleared);
            scheduler.RunUntil(a, HistoryPoint.VcpuResolved);
            scheduler.RunToEnd(b);
            scheduler.RunToEnd(a);

            Assert.That(order, Is.EqualTo(new[] { "b1", "a1", "b2", "a2" }));
        }
    }

    [Test]
    public void AnUnarmedPointAndANonActorThreadPassThrough()
    {
        var scheduler = new StepScheduler(new NotifierEventRecorder());
        var passed = 0;
        var actor = scheduler.Start("actor", () =>
        {
            scheduler.Hold(HistoryPoint.VcpuResolving); // not armed
            passed++;
        });

        scheduler.Arm(HistoryPoint.HostFrameFreed);
        scheduler.Hold(HistoryPoint.HostFrameFreed); // this test's thread is no actor
        scheduler.RunToEnd(actor);

        Assert.That(passed, Is.EqualTo(1));
    }

    [Test]
    public void AnActorThatFinishesWithoutReachingThePointIsReported()
    {
        var scheduler = new StepScheduler(new NotifierEventRecorder());
        var actor = scheduler.Start("quick", () => { });

        Assert.That(() => scheduler.RunUntil(actor, HistoryPoint.HostPteCleared),
            Throws.InvalidOperationException.With.Message.Contains("quick").And.Message.Contains(nameof(HistoryPoint.HostPteCleared)));
    }

    [Test]
    public void AnActorsExceptionSurfacesFromItsStepNamingTheActor()
    {
        var scheduler = new StepScheduler(new NotifierEventRecorder());
        var actor = scheduler.Start("failing", () => throw new InvalidDataException("boom"));

        Assert.That(() => scheduler.RunToEnd(actor),
            Throws.InvalidOperationException.With.Message.Contains("failing").And.Message.Contains("boom").And.InnerException.TypeOf<InvalidDataException>());
    }

    [Test]
    public void MarksGoIntoTheTimelineFromTheSchedulersThread()
    {
        var recorder = new NotifierEventRecorder();
        var scheduler = new StepScheduler(recorder);

        scheduler.Mark("step one");

        Assert.That(recorder.Events.Single().Label, Is.EqualTo("step one"));
        Assert.That(recorder.Events.Single().ThreadId, Is.EqualTo(Environment.CurrentManagedThreadId));
        Assert.That(scheduler.ActorNames, Is.Empty);
    }
}

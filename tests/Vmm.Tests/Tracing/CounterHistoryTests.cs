using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>
/// The counter history behind <c>--report</c>'s charts: a track keeps at most its capacity, thinned evenly and always
/// from the first sample; VMs built while a history is current (on this thread or one started from it) attach, others
/// do not; a VM's last sample is taken at its teardown with its final counts; a watched figure starts at -1.
/// </summary>
public sealed class CounterHistoryTests
{
    [Test]
    public void AFullTrackIsThinnedEvenlyAndStaysWithinItsCapacity()
    {
        var track = new CounterTrack(0, "vm", capacity: 8);
        for (var tick = 0; tick < 1000; tick++)
        {
            track.Tick(new CounterSample(tick, tick, 0, 0, 0, 0, 0, -1));
        }

        var samples = track.ToArray();
        var steps = samples.Zip(samples.Skip(1), (a, b) => b.Milliseconds - a.Milliseconds).Distinct().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(samples, Has.Length.InRange(4, 8));
            Assert.That(samples[0].Milliseconds, Is.Zero, "the first sample stays");
            Assert.That(steps, Is.EqualTo(new[] { (double)track.Stride }), "evenly spaced at the stride");
            Assert.That(track.Stride, Is.EqualTo(128), "1000 ticks in 8 samples: thinned until 1000 / stride fits");
            Assert.That(samples[^1].Milliseconds, Is.GreaterThan(1000 - (2 * track.Stride)), "the track covers the whole run");
        });
    }

    [Test]
    public void OnlyVmsBuiltWhileTheHistoryIsCurrentAttachIncludingOnAnotherThread()
    {
        using var history = new CounterHistory(TimeSpan.FromMilliseconds(1));
        using var outside = NewVm();
        Vm? onThread = null;
        using (history.MakeCurrent())
        {
            Assert.That(CounterHistory.Current, Is.SameAs(history));
            using var inside = NewVm();
            var thread = new Thread(() => onThread = NewVm());
            thread.Start();
            thread.Join();
            Assert.Multiple(() =>
            {
                Assert.That(history.IdOf(inside), Is.Zero);
                Assert.That(history.IdOf(onThread!), Is.EqualTo(1), "the ambient history flows into threads started under it");
                Assert.That(inside.History, Is.SameAs(history));
            });
        }

        onThread!.Dispose();
        Assert.Multiple(() =>
        {
            Assert.That(CounterHistory.Current, Is.Null, "the scope restores the previous (none)");
            Assert.That(history.IdOf(outside), Is.Null);
            Assert.That(outside.History, Is.Null);
            Assert.That(history.Snapshot().Select(s => s.Label), Is.EqualTo(new[] { "VM 0: 8 MiB", "VM 1: 8 MiB" }));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheLastSampleIsTakenAtTeardownWithTheFinalCounts()
    {
        using var history = new CounterHistory(TimeSpan.FromMilliseconds(5));
        long faults;
        long zapped;
        long resident;
        using (history.MakeCurrent())
        {
            using var vm = NewVm();
            vm.Boot(BootImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("hello"))));
            var result = vm.Run();
            Assert.That(result.ExitCode, Is.Zero);
            faults = vm.Mmu!.FaultCount;
            zapped = vm.Mmu.ZappedCount;
            resident = vm.Process!.Stats.RssPages;
        }

        var series = history.Snapshot().Single();
        var last = series.Samples[^1];
        Assert.Multiple(() =>
        {
            Assert.That(series.Samples.Count, Is.GreaterThanOrEqualTo(2), "a first sample at construction and a last at teardown");
            Assert.That(series.Samples[0].Faults, Is.Zero, "nothing had faulted at construction");
            Assert.That(last.Faults, Is.EqualTo(faults).And.Positive);
            Assert.That(last.Zapped, Is.EqualTo(zapped));
            Assert.That(last.Resident, Is.EqualTo(resident).And.Positive);
            Assert.That(last.Sptes, Is.Positive);
            Assert.That(series.Samples.Select(s => s.Milliseconds), Is.Ordered);
            Assert.That(last.Watched, Is.EqualTo(-1), "nothing watched");
        });
    }

    [Test]
    public void AWatchedFigureIsSampledFromWhenItIsWatched()
    {
        using var history = new CounterHistory(TimeSpan.FromMilliseconds(1));
        using (history.MakeCurrent())
        {
            using var vm = NewVm();
            history.Watch(vm, "answer", () => 42);
            Thread.Sleep(30);
        }

        var series = history.Snapshot().Single();
        Assert.Multiple(() =>
        {
            Assert.That(series.WatchedName, Is.EqualTo("answer"));
            Assert.That(series.Samples[0].Watched, Is.EqualTo(-1), "the first sample came before the watch");
            Assert.That(series.Samples[^1].Watched, Is.EqualTo(42));
        });
    }

    private static Vm NewVm() => new(new VmOptions { MemoryBytes = 8UL << 20 }, new GuestConsole());
}

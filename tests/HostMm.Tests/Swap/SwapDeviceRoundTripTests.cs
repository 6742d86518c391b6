using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// Both devices (and the file with direct I/O, whose managed buffers here are not page-aligned) store and return every
/// kind of page exactly, single and batched.
/// </summary>
[TestFixture(SwapDeviceKind.File, false)]
[TestFixture(SwapDeviceKind.File, true)]
[TestFixture(SwapDeviceKind.Zram, false)]
public sealed class SwapDeviceRoundTripTests(SwapDeviceKind kind, bool directIo)
{
    private const ulong Slots = 1024;
    private ISwapDevice _device = null!;

    [SetUp]
    public void SetUp()
    {
        if (directIo)
        {
            DirectIoSupport.IgnoreUnlessAvailable();
        }

        _device = SwapFactory.CreateDevice(new SwapOptions { Kind = kind, SizeBytes = Slots * 4096, DirectIo = directIo });
    }

    [TearDown]
    public void TearDown() => _device?.Dispose(); // null when SetUp ignored the fixture

    [Test]
    public void EveryKindOfPage_ReadsBackAsWritten([Values] SwapPageKind pageKind)
    {
        var pages = Enumerable.Range(0, 16).Select(i => SwapPages.Make(pageKind, 100 + i)).ToArray();
        for (var i = 0; i < pages.Length; i++)
        {
            Assert.That(_device.Write((ulong)(1 + (i * 37)), pages[i]), Is.EqualTo(SwapIoResult.Success));
        }

        var read = new byte[4096];
        for (var i = 0; i < pages.Length; i++)
        {
            read.AsSpan().Fill(0xEE);
            Assert.That(_device.Read((ulong)(1 + (i * 37)), read), Is.EqualTo(SwapIoResult.Success));
            Assert.That(read, Is.EqualTo(pages[i]), $"page {i} ({pageKind})");
        }
    }

    [Test]
    public void Overwrite_ReadsTheNewPage()
    {
        var first = SwapPages.Make(SwapPageKind.Text, 1);
        var second = SwapPages.Make(SwapPageKind.Random, 2);
        _device.Write(5, first);
        _device.Write(5, second);
        var read = new byte[4096];
        _device.Read(5, read);
        Assert.That(read, Is.EqualTo(second));
    }

    [Test]
    public void WriteRun_EqualsSingleWrites_AndReadRunEqualsSingleReads([Values(1, 8, 64)] int pages)
    {
        var data = SwapPages.MakeRun(pages, pages);
        Assert.That(_device.WriteRun(100, data).IsOk, Is.True);
        for (var i = 0; i < pages; i++)
        {
            _device.Write((ulong)(500 + i), data.AsSpan(i * 4096, 4096));
        }

        var run = new byte[data.Length];
        var singles = new byte[data.Length];
        Assert.That(_device.ReadRun(500, run).IsOk, Is.True); // written singly, read as a run
        for (var i = 0; i < pages; i++)
        {
            Assert.That(_device.Read((ulong)(100 + i), singles.AsSpan(i * 4096, 4096)).IsOk, Is.True); // written as a run, read singly
        }

        Assert.That(run.AsSpan().SequenceEqual(data), Is.True, "written singly, read as a run");
        Assert.That(singles.AsSpan().SequenceEqual(data), Is.True, "written as a run, read singly");
    }

    [Test]
    public void RunIsOneCallToTheMedium()
    {
        var before = _device.GetStats();
        _device.WriteRun(10, new byte[8 * 4096].Select((_, i) => (byte)(i / 4096 + 1)).ToArray());
        _device.ReadRun(10, new byte[8 * 4096]);
        var after = _device.GetStats();
        Assert.That(after.WriteCalls - before.WriteCalls, Is.EqualTo(1));
        Assert.That(after.ReadCalls - before.ReadCalls, Is.EqualTo(1));
        Assert.That(after.PagesWritten - before.PagesWritten, Is.EqualTo(8));
        Assert.That(after.PagesRead - before.PagesRead, Is.EqualTo(8));
    }

    [Test]
    public void HeaderSlotAndSlotsPastTheEnd_AreRefused()
    {
        var page = new byte[4096];
        Assert.Multiple(() =>
        {
            Assert.That(() => _device.Write(0, page), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("slot 0 is the header"));
            Assert.That(() => _device.Read(Slots, page), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("0x400"));
            Assert.That(() => _device.WriteRun(Slots - 1, new byte[2 * 4096]), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => _device.Write(1, new byte[100]), Throws.ArgumentException.With.Message.Contains("exactly 4096"));
            Assert.That(() => _device.ReadRun(1, new byte[4097]), Throws.ArgumentException.With.Message.Contains("positive multiple"));
            Assert.That(() => _device.Discard(0), Throws.TypeOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void ConcurrentTransfersOnDistinctSlots_AllRoundTrip()
    {
        const int threads = 4;
        const int perThread = 200;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var random = new Random(7000 + t);
            var page = new byte[4096];
            var read = new byte[4096];
            for (var op = 0; op < perThread; op++)
            {
                var slot = (ulong)(1 + t + (threads * random.Next((int)(Slots - 1) / threads)));
                SwapPages.Fill(page, (SwapPageKind)random.Next(4), random.Next());
                _device.Write(slot, page);
                _device.Read(slot, read);
                if (!read.AsSpan().SequenceEqual(page))
                {
                    failures.Enqueue($"thread {t} slot {slot} op {op}");
                }
            }
        });
        Assert.That(failures, Is.Empty);
    }
}

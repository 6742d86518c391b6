using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>Checked transfers through the area: checksums, zero map, failures as statuses naming the slot.</summary>
[TestFixture(SwapDeviceKind.File)]
[TestFixture(SwapDeviceKind.Zram)]
public sealed class SwapAreaIoTests(SwapDeviceKind kind)
{
    private const ulong Slots = 2048;
    private FaultInjectingSwapDevice _faults = null!;
    private SwapArea _area = null!;

    [SetUp]
    public void SetUp()
    {
        _area = SwapFactory.CreateArea(new SwapOptions { Kind = kind, SizeBytes = Slots * 4096, FaultInjection = new SwapFaultInjection { Seed = 11 } });
        _faults = (FaultInjectingSwapDevice)_area.Device;
    }

    [TearDown]
    public void TearDown() => _area.Dispose();

    [Test]
    public void EveryKindOfPage_RoundTrips([Values] SwapPageKind pageKind)
    {
        var slot = Allocate();
        var page = SwapPages.Make(pageKind, 21);
        Assert.That(_area.Write(slot, page).IsOk, Is.True);
        var read = new byte[4096];
        Assert.That(_area.Read(slot, read), Is.EqualTo(SwapIoResult.Success));
        Assert.That(read, Is.EqualTo(page));
    }

    [Test]
    public void ZeroPage_GoesToTheZeroMap_WithNoDeviceIo()
    {
        var slot = Allocate();
        var before = _faults.GetStats();
        _area.Write(slot, new byte[4096]);
        var read = Enumerable.Repeat((byte)3, 4096).ToArray();
        _area.Read(slot, read);
        var after = _faults.GetStats();
        var stats = _area.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(read.All(b => b == 0), Is.True);
            Assert.That(after.WriteCalls, Is.EqualTo(before.WriteCalls));
            Assert.That(after.ReadCalls, Is.EqualTo(before.ReadCalls));
            Assert.That(stats.SwpoutZero, Is.EqualTo(1));
            Assert.That(stats.SwpinZero, Is.EqualTo(1));
            Assert.That(stats.Pswpout, Is.Zero);
        });
    }

    [Test]
    public void Runs_RoundTrip_AndEqualSingleTransfers([Values(1, 8, 64)] int pages)
    {
        var slots = new ulong[pages];
        Assert.That(_area.AllocateBatch(slots), Is.EqualTo(pages));
        Assert.That(slots.Zip(slots.Skip(1), (a, b) => b - a).All(d => d == 1), Is.True, "a fresh area gives a contiguous batch");
        var data = SwapPages.MakeRun(pages, 100 + pages);
        Assert.That(_area.WriteRun(slots[0], data).IsOk, Is.True);

        var run = new byte[data.Length];
        Assert.That(_area.ReadRun(slots[0], run).IsOk, Is.True);
        Assert.That(run.AsSpan().SequenceEqual(data), Is.True, "run read");
        var single = new byte[4096];
        for (var i = 0; i < pages; i++)
        {
            Assert.That(_area.Read(slots[i], single).IsOk, Is.True);
            Assert.That(single.AsSpan().SequenceEqual(data.AsSpan(i * 4096, 4096)), Is.True, $"page {i}");
        }

        var stats = _area.GetStats();
        Assert.That(stats.Pswpout + stats.SwpoutZero, Is.EqualTo(pages));
    }

    [Test]
    public void CorruptionOnWrite_IsAChecksumMismatchOnRead_AndThePageIsPoisoned()
    {
        var slot = Allocate();
        _faults.CorruptWriteRate = 1;
        Assert.That(_area.Write(slot, SwapPages.Make(SwapPageKind.Text, 1)).IsOk, Is.True, "the corruption is silent");
        _faults.CorruptWriteRate = 0;
        AssertReadFails(slot, SwapIoStatus.ChecksumMismatch);
        Assert.That(_area.GetStats().ChecksumFailures, Is.EqualTo(1));
    }

    [Test]
    public void CorruptionOnRead_IsAChecksumMismatch_AndARetryReadsGoodData()
    {
        var slot = Allocate();
        var page = SwapPages.Make(SwapPageKind.Random, 2);
        _area.Write(slot, page);
        _faults.CorruptReadRate = 1;
        AssertReadFails(slot, SwapIoStatus.ChecksumMismatch);
        _faults.CorruptReadRate = 0;
        var read = new byte[4096];
        Assert.That(_area.Read(slot, read).IsOk, Is.True);
        Assert.That(read, Is.EqualTo(page));
    }

    [Test]
    public void ReadError_IsAnIoErrorNamingTheSlot_AndThePageIsPoisoned()
    {
        var slot = Allocate();
        _area.Write(slot, SwapPages.Make(SwapPageKind.Text, 3));
        _faults.ReadErrorRate = 1;
        AssertReadFails(slot, SwapIoStatus.IoError);
        Assert.That(_area.GetStats().ReadErrors, Is.EqualTo(1));
    }

    [Test]
    public void WriteError_LeavesTheSlotAllocatedWithoutData_AndThePageUntouched_AndARetrySucceeds(
        [Values(SwapIoStatus.IoError, SwapIoStatus.DeviceFull)] SwapIoStatus status)
    {
        _area.Dispose();
        _area = SwapFactory.CreateArea(new SwapOptions
        {
            Kind = kind,
            SizeBytes = Slots * 4096,
            FaultInjection = new SwapFaultInjection { WriteErrorRate = 1, WriteErrorStatus = status },
        });
        _faults = (FaultInjectingSwapDevice)_area.Device;

        var slot = Allocate();
        var page = SwapPages.Make(SwapPageKind.Text, 4);
        var copy = page.ToArray();
        Assert.That(_area.Write(slot, page), Is.EqualTo(SwapIoResult.Failed(status, slot)));
        Assert.Multiple(() =>
        {
            Assert.That(page, Is.EqualTo(copy), "the caller's page is untouched");
            Assert.That(_area.GetUsage(slot).HasCache, Is.True, "the slot stays allocated to the swap-cache page");
            Assert.That(_area.GetStats().WriteErrors, Is.EqualTo(1));
            Assert.That(() => _area.Read(slot, new byte[4096]), Throws.TypeOf<SwapSlotStateException>().With.Message.Contains("no data"));
        });

        _faults.WriteErrorRate = 0;
        Assert.That(_area.Write(slot, page).IsOk, Is.True, "reclaim retries the write later");
        var read = new byte[4096];
        Assert.That(_area.Read(slot, read).IsOk, Is.True);
        Assert.That(read, Is.EqualTo(page));
    }

    [Test]
    public void ReadRun_WithABadPageInTheMiddle_ReturnsThePrefix_NamesTheSlot_AndPoisonsTheRest()
    {
        var slots = new ulong[8];
        _area.AllocateBatch(slots);
        var data = new byte[8 * 4096];
        for (var i = 0; i < 8; i++)
        {
            SwapPages.Fill(data.AsSpan(i * 4096, 4096), SwapPageKind.Text, i);
        }

        _area.WriteRun(slots[0], data.AsSpan(0, 4 * 4096));
        _faults.CorruptWriteRate = 1;
        _area.Write(slots[4], data.AsSpan(4 * 4096, 4096)); // the fifth page is stored corrupted
        _faults.CorruptWriteRate = 0;
        _area.WriteRun(slots[5], data.AsSpan(5 * 4096));

        var read = new byte[8 * 4096];
        var result = _area.ReadRun(slots[0], read);
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.ChecksumMismatch, slots[4])));
            Assert.That(read.AsSpan(0, 4 * 4096).SequenceEqual(data.AsSpan(0, 4 * 4096)), Is.True, "the verified prefix");
            Assert.That(read.AsSpan(4 * 4096).ToArray().All(b => b == SwapArea.PoisonByte), Is.True, "the bad page and all after it");
            Assert.That(result.ToString(), Is.EqualTo($"ChecksumMismatch at swap slot 0x{slots[4]:x}"));
        });
    }

    [Test]
    public void WriteRun_WithAFailureInTheMiddle_KeepsThePrefix_AndTheRestHoldsNoData()
    {
        var slots = new ulong[8];
        _area.AllocateBatch(slots);
        var data = SwapPages.MakeRun(8, 77);
        for (var i = 0; i < 8; i++)
        {
            SwapPages.Fill(data.AsSpan(i * 4096, 4096), SwapPageKind.Random, i); // no zero pages: one device run
        }

        _faults.WriteErrorRate = 0.25;
        var result = _area.WriteRun(slots[0], data);
        _faults.WriteErrorRate = 0;
        Assert.That(result.IsOk, Is.False, "seed 11 at rate 0.25 fails one of 8 pages");
        var failed = (int)(result.Slot - slots[0]);
        var page = new byte[4096];
        for (var i = 0; i < 8; i++)
        {
            if (i < failed)
            {
                Assert.That(_area.Read(slots[i], page).IsOk, Is.True);
                Assert.That(page, Is.EqualTo(data.AsSpan(i * 4096, 4096).ToArray()));
            }
            else
            {
                var index = i;
                Assert.That(() => _area.Read(slots[index], page), Throws.TypeOf<SwapSlotStateException>());
            }
        }
    }

    private ulong Allocate()
    {
        Assert.That(_area.TryAllocate(out var slot), Is.True);
        return slot;
    }

    private void AssertReadFails(ulong slot, SwapIoStatus status)
    {
        var read = new byte[4096];
        var result = _area.Read(slot, read);
        Assert.That(result, Is.EqualTo(SwapIoResult.Failed(status, slot)));
        Assert.That(read.All(b => b == SwapArea.PoisonByte), Is.True, "never wrong data: the page is poisoned");
    }
}

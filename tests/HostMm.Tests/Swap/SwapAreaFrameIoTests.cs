using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// The area's transfers straight from and to frames (<see cref="SwapArea.WriteFrames"/>, <see cref="SwapArea.ReadFrames"/>):
/// the same checksums, zero map and failure results as the buffer runs, through the fault-injecting decorator, on a
/// vectored device (the file on Linux) and one without (zram).
/// </summary>
[TestFixture(SwapDeviceKind.File)]
[TestFixture(SwapDeviceKind.Zram)]
public sealed class SwapAreaFrameIoTests(SwapDeviceKind kind)
{
    private const ulong Slots = 2048;
    private const int Page = SwapPages.Size;
    private FaultInjectingSwapDevice _faults = null!;
    private SwapArea _area = null!;

    [SetUp]
    public void SetUp()
    {
        _area = SwapFactory.CreateArea(new SwapOptions { Kind = kind, SizeBytes = Slots * Page, FaultInjection = new SwapFaultInjection { Seed = 17 } });
        _faults = (FaultInjectingSwapDevice)_area.Device;
    }

    [TearDown]
    public void TearDown() => _area.Dispose();

    /// <summary>Replaces the fixture's area by one on <paramref name="device"/> (same size and faults), for a device-specific test.</summary>
    private void UseDevice(SwapDeviceKind device)
    {
        _area.Dispose();
        _area = SwapFactory.CreateArea(new SwapOptions { Kind = device, SizeBytes = Slots * Page, FaultInjection = new SwapFaultInjection { Seed = 17 } });
        _faults = (FaultInjectingSwapDevice)_area.Device;
    }

    [Test]
    public void Frames_RoundTrip_WithZeroPagesInTheZeroMap_AndMatchTheBufferPath([Values(1, 8, 32)] int count)
    {
        var slots = Allocate(count);
        using var frames = new NativePages(count);
        var data = SwapPages.MakeRun(count, 40 + count);
        frames.Load(data);
        var before = _area.GetStats();
        Assert.That(_area.WriteFrames(slots[0], frames.Addresses), Is.EqualTo(SwapIoResult.Success));
        var zeros = Enumerable.Range(0, count).Count(i => !data.AsSpan(i * Page, Page).ContainsAnyExcept((byte)0));

        using var back = new NativePages(count, seed: 99);
        Assert.That(_area.ReadFrames(slots[0], back.Addresses), Is.EqualTo(SwapIoResult.Success));
        var buffer = new byte[count * Page];
        Assert.That(_area.ReadRun(slots[0], buffer), Is.EqualTo(SwapIoResult.Success));
        var stats = _area.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(buffer, Is.EqualTo(data), "the buffer path reads what the frame path wrote");
            Assert.That(stats.SwpoutZero - before.SwpoutZero, Is.EqualTo(zeros));
            Assert.That(stats.Pswpout - before.Pswpout, Is.EqualTo(count - zeros));
            Assert.That(stats.Pswpin - before.Pswpin, Is.EqualTo(2 * (count - zeros)));
        });
    }

    [Test]
    public void TheFileDevice_TakesTheFramesVectoredOnLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("only the file device on Linux has vectored calls; other systems take the bounce buffer");
        }

        if (kind != SwapDeviceKind.File)
        {
            UseDevice(SwapDeviceKind.File); // this fixture's zram run checks the file device too: the check is about the file
        }

        var file = (FileSwapDevice)_faults.Inner;
        var slots = Allocate(16);
        using var frames = new NativePages(16);
        for (var i = 0; i < 16; i++)
        {
            SwapPages.Fill(frames.Page(i), SwapPageKind.Random, i);
        }

        var calls = file.VectoredCalls;
        Assert.That(_area.WriteFrames(slots[0], frames.Addresses).IsOk, Is.True);
        using var back = new NativePages(16, seed: 1);
        Assert.That(_area.ReadFrames(slots[0], back.Addresses).IsOk, Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(file.VectoredCalls - calls, Is.EqualTo(2), "one pwritev and one preadv for 16 scattered frames");
            Assert.That(back.ToArray(), Is.EqualTo(frames.ToArray()));
        });
    }

    [Test]
    public void Zram_TakesTheFramesWhereTheyAre_OneDeviceCallPerRun()
    {
        if (kind != SwapDeviceKind.Zram)
        {
            UseDevice(SwapDeviceKind.Zram); // the file fixture's run checks zram too: the check is about zram
        }

        var slots = Allocate(12);
        using var frames = new NativePages(12);
        for (var i = 0; i < 12; i++)
        {
            SwapPages.Fill(frames.Page(i), i % 2 == 0 ? SwapPageKind.Text : SwapPageKind.SameFilled, i);
        }

        var before = _faults.Inner.GetStats();
        Assert.That(_area.WriteFrames(slots[0], frames.Addresses).IsOk, Is.True);
        using var back = new NativePages(12, seed: 8);
        Assert.That(_area.ReadFrames(slots[0], back.Addresses).IsOk, Is.True);
        var after = _faults.Inner.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(frames.ToArray()));
            Assert.That(after.WriteCalls - before.WriteCalls, Is.EqualTo(1));
            Assert.That(after.ReadCalls - before.ReadCalls, Is.EqualTo(1));
            Assert.That(((ZramSwapDevice)_faults.Inner).GetZramStats().SameFilledPages, Is.EqualTo(6));
        });
    }

    [Test]
    public void CorruptionOnWrite_IsAChecksumMismatchOnReadFrames_NamingTheSlot_AndPoisonsFromThere()
    {
        var slots = Allocate(8);
        using var frames = new NativePages(8);
        for (var i = 0; i < 8; i++)
        {
            SwapPages.Fill(frames.Page(i), SwapPageKind.Text, i);
        }

        Assert.That(_area.WriteFrames(slots[0], frames.Addresses.AsSpan(0, 3)).IsOk, Is.True);
        _faults.CorruptWriteRate = 1;
        Assert.That(_area.WriteFrames(slots[3], frames.Addresses.AsSpan(3, 1)).IsOk, Is.True, "the corruption is silent");
        _faults.CorruptWriteRate = 0;
        Assert.That(_area.WriteFrames(slots[4], frames.Addresses.AsSpan(4)).IsOk, Is.True);

        using var back = new NativePages(8, seed: 2);
        var result = _area.ReadFrames(slots[0], back.Addresses);
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.ChecksumMismatch, slots[3])));
            for (var i = 0; i < 8; i++)
            {
                if (i < 3)
                {
                    Assert.That(back.Page(i).SequenceEqual(frames.Page(i)), Is.True, $"frame {i} verified");
                }
                else
                {
                    Assert.That(back.Page(i).ContainsAnyExcept(SwapArea.PoisonByte), Is.False, $"frame {i} poisoned");
                }
            }

            Assert.That(_area.GetStats().ChecksumFailures, Is.EqualTo(1));
        });
    }

    [Test]
    public void ReadError_IsAnIoErrorNamingTheSlot_AndARetryReadsGoodData()
    {
        var slots = Allocate(4);
        using var frames = new NativePages(4);
        for (var i = 0; i < 4; i++)
        {
            SwapPages.Fill(frames.Page(i), SwapPageKind.Random, 50 + i);
        }

        Assert.That(_area.WriteFrames(slots[0], frames.Addresses).IsOk, Is.True);
        using var back = new NativePages(4, seed: 3);
        _faults.ReadErrorRate = 1;
        var failed = _area.ReadFrames(slots[0], back.Addresses);
        _faults.ReadErrorRate = 0;
        Assert.Multiple(() =>
        {
            Assert.That(failed, Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.IoError, slots[0])));
            Assert.That(back.Page(0).ContainsAnyExcept(SwapArea.PoisonByte), Is.False);
            Assert.That(_area.ReadFrames(slots[0], back.Addresses), Is.EqualTo(SwapIoResult.Success));
            Assert.That(back.ToArray(), Is.EqualTo(frames.ToArray()));
        });
    }

    [Test]
    public void WriteError_InTheMiddle_KeepsThePrefix_TheRestHoldsNoData_AndTheFramesAreUntouched(
        [Values(SwapIoStatus.IoError, SwapIoStatus.DeviceFull)] SwapIoStatus status)
    {
        _area.Dispose();
        _area = SwapFactory.CreateArea(new SwapOptions
        {
            Kind = kind,
            SizeBytes = Slots * Page,
            FaultInjection = new SwapFaultInjection { Seed = 17, WriteErrorStatus = status },
        });
        _faults = (FaultInjectingSwapDevice)_area.Device;
        var slots = Allocate(8);
        using var frames = new NativePages(8);
        for (var i = 0; i < 8; i++)
        {
            SwapPages.Fill(frames.Page(i), SwapPageKind.Random, 60 + i);
        }

        var copy = frames.ToArray();
        _faults.WriteErrorRate = 0.25;
        var result = _area.WriteFrames(slots[0], frames.Addresses);
        _faults.WriteErrorRate = 0;
        Assert.That(result.IsOk, Is.False, "seed 17 at rate 0.25 fails one of 8 pages");
        Assert.That(result.Status, Is.EqualTo(status));
        var failed = (int)(result.Slot - slots[0]);
        Assert.That(frames.ToArray(), Is.EqualTo(copy), "a write never modifies the frames");
        using var back = new NativePages(1, seed: 4);
        for (var i = 0; i < 8; i++)
        {
            if (i < failed)
            {
                Assert.That(_area.ReadFrames(slots[i], back.Addresses).IsOk, Is.True);
                Assert.That(back.Page(0).SequenceEqual(frames.Page(i)), Is.True, $"slot {i} holds its page");
            }
            else
            {
                var slot = slots[i];
                Assert.Throws<SwapSlotStateException>(() => _area.ReadFrames(slot, back.Addresses), $"slot {i} holds no data");
            }
        }

        // A retry of the failed rest (reclaim writes the pages again later) succeeds.
        Assert.That(_area.WriteFrames(slots[failed], frames.Addresses.AsSpan(failed)).IsOk, Is.True);
    }

    [Test]
    public void TheDecorator_InjectsTheSameFaults_GatheredAsInBufferRuns()
    {
        using var runs = new FaultInjectingSwapDevice(new ZramSwapDevice(256 * Page), new SwapFaultInjection { Seed = 5, WriteErrorRate = 0.05, CorruptWriteRate = 0.1 });
        using var gathered = new FaultInjectingSwapDevice(new ZramSwapDevice(256 * Page), new SwapFaultInjection { Seed = 5, WriteErrorRate = 0.05, CorruptWriteRate = 0.1 });
        using var frames = new NativePages(40);
        var data = SwapPages.MakeRun(40, 3);
        frames.Load(data);
        for (var round = 0; round < 5; round++)
        {
            var a = runs.WriteRun(1, data);
            var b = gathered.WriteGather(1, frames.Addresses);
            Assert.That(b, Is.EqualTo(a), $"round {round}");
        }

        Assert.That(gathered.GetInjectionStats(), Is.EqualTo(runs.GetInjectionStats()));
        Assert.That(runs.GetInjectionStats().CorruptedWrites, Is.Positive);
    }

    [Test]
    public void BadFrameLists_AreRefusedNamingTheRule()
    {
        var slots = Allocate(2);
        var empty = Assert.Throws<ArgumentException>(() => _area.WriteFrames(slots[0], ReadOnlySpan<nint>.Empty));
        Assert.That(empty!.Message, Does.Contain("none"));
        var zero = Assert.Throws<ArgumentException>(() => _area.ReadFrames(slots[0], [0, 0]));
        Assert.That(zero!.Message, Does.Contain("0x" + slots[0].ToString("x")).And.Contain("one of them 0"));
    }

    private ulong[] Allocate(int count)
    {
        var slots = new ulong[count];
        Assert.That(_area.AllocateBatch(slots), Is.EqualTo(count));
        for (var i = 1; i < count; i++)
        {
            Assert.That(slots[i], Is.EqualTo(slots[0] + (ulong)i), "a fresh area hands out contiguous slots");
        }

        return slots;
    }
}

using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// The file device's gathered transfers: <c>pwritev</c>/<c>preadv</c> straight from and to scattered native pages,
/// continued after short transfers, errors mapped to the device's statuses, and the bounce-buffer fallback.
/// </summary>
public sealed class VectoredFileSwapDeviceTests
{
    private const int Page = SwapPages.Size;

    [Test]
    public void WriteGather_ThenReadScatter_RoundTripsScatteredPages_InOneSystemCallEach()
    {
        RequireLinux();
        var io = new ScriptedVectoredFileIo();
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(20);
        var data = SwapPages.MakeRun(20, 5);
        pages.Load(data);

        Assert.That(device.WriteGather(3, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.That(io.Calls, Is.EqualTo(1), "20 pages are one pwritev");

        // The plain path sees the pages at their slots.
        var plain = new byte[20 * Page];
        Assert.That(device.ReadRun(3, plain).IsOk, Is.True);
        Assert.That(plain, Is.EqualTo(data));

        using var back = new NativePages(20, seed: 9);
        Assert.That(device.ReadScatter(3, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.Multiple(() =>
        {
            Assert.That(io.Calls, Is.EqualTo(2), "20 pages are one preadv");
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(device.IsVectoredIoActive, Is.True);
            Assert.That(device.VectoredCalls, Is.EqualTo(2));
            var stats = device.GetStats();
            Assert.That(stats.PagesWritten, Is.EqualTo(20));
            Assert.That(stats.PagesRead, Is.EqualTo(40));
            Assert.That(stats.WriteCalls, Is.EqualTo(1));
        });
    }

    [Test]
    public void TheRealCalls_AreUsedOnLinux_AndRunsLongerThanTheIovecBatchLoop()
    {
        RequireLinux();
        using var device = new FileSwapDevice(null, 256 * Page);
        using var pages = new NativePages(150);
        var data = SwapPages.MakeRun(150, 8);
        pages.Load(data);
        Assert.That(device.IsVectoredIoActive, Is.True);
        Assert.That(device.WriteGather(1, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        using var back = new NativePages(150, seed: 4);
        Assert.That(device.ReadScatter(1, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(device.VectoredCalls, Is.EqualTo(6), "150 pages in calls of at most 64 iovecs, each way");
        });
    }

    [TestCase(1000)]
    [TestCase(4096)]
    [TestCase(3 * 4096 + 17)]
    public void ShortTransfers_AreContinuedWhereTheyStopped_EvenMidPage(long bytesPerCall)
    {
        RequireLinux();
        var io = new ScriptedVectoredFileIo { MaxBytesPerCall = bytesPerCall };
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(9);
        var data = SwapPages.MakeRun(9, 6);
        pages.Load(data);
        Assert.That(device.WriteGather(10, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        var calls = (int)((9L * Page + bytesPerCall - 1) / bytesPerCall);
        Assert.That(io.Calls, Is.EqualTo(calls));

        using var back = new NativePages(9, seed: 1);
        Assert.That(device.ReadScatter(10, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.Multiple(() =>
        {
            Assert.That(io.Calls, Is.EqualTo(2 * calls));
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(device.GetStats().PagesRead, Is.EqualTo(9));
        });
    }

    [Test]
    public void EndOfFileBeforeTheRunEnds_IsAnIoErrorNamingTheFirstSlotNotRead_AfterAReadPrefix()
    {
        RequireLinux();
        var io = new ScriptedVectoredFileIo();
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(8);
        var data = SwapPages.MakeRun(8, 12);
        pages.Load(data);
        Assert.That(device.WriteGather(20, pages.Addresses).IsOk, Is.True);

        // The file ends (as if truncated behind the device) halfway through slot 25.
        io.EndOfFile = (25L * Page) + 2048;
        using var back = new NativePages(8, seed: 2);
        var result = device.ReadScatter(20, back.Addresses);
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.IoError, 25)));
            Assert.That(back.ToArray().AsSpan(0, 5 * Page).SequenceEqual(data.AsSpan(0, 5 * Page)), Is.True, "slots 20..24 were read");
            Assert.That(device.GetStats().ReadErrors, Is.EqualTo(1));
            Assert.That(device.GetStats().PagesRead, Is.EqualTo(5));
        });
    }

    [TestCase(true, LinuxVectoredFileIo.Eio, SwapIoStatus.IoError)]
    [TestCase(true, LinuxVectoredFileIo.Enospc, SwapIoStatus.DeviceFull)]
    [TestCase(true, 122 /* EDQUOT */, SwapIoStatus.IoError)]
    [TestCase(false, LinuxVectoredFileIo.Eio, SwapIoStatus.IoError)]
    [TestCase(false, LinuxVectoredFileIo.Enospc, SwapIoStatus.IoError)]
    public void Errno_MapsToTheDeviceStatus_NamingTheFirstSlotNotTransferred(bool write, int errno, SwapIoStatus status)
    {
        RequireLinux();
        var io = new ScriptedVectoredFileIo();
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(6);
        var data = SwapPages.MakeRun(6, 13);
        pages.Load(data);
        Assert.That(device.WriteGather(30, pages.Addresses).IsOk, Is.True);

        // Two and a half pages move, then the call fails: the half page does not count as transferred.
        io.FailAfterBytes = io.BytesMoved + (2 * Page) + 2048;
        io.Errno = errno;
        io.MaxBytesPerCall = 3 * Page;
        using var back = new NativePages(6, seed: 8);
        var result = write ? device.WriteGather(30, pages.Addresses) : device.ReadScatter(30, back.Addresses);
        var stats = device.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(SwapIoResult.Failed(status, 32)));
            Assert.That(write ? stats.WriteErrors : stats.ReadErrors, Is.EqualTo(1));
            Assert.That(device.IsVectoredIoActive, Is.True, "an I/O error is not a refusal of the call");
            if (!write)
            {
                Assert.That(back.ToArray().AsSpan(0, 2 * Page).SequenceEqual(data.AsSpan(0, 2 * Page)), Is.True, "the prefix was read");
            }
        });
    }

    [Test]
    public void Eintr_IsRetried()
    {
        RequireLinux();
        var io = new ScriptedVectoredFileIo { InterruptedCalls = 2 };
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(4);
        var data = SwapPages.MakeRun(4, 2);
        pages.Load(data);
        Assert.That(device.WriteGather(1, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        io.InterruptedCalls = 1;
        using var back = new NativePages(4, seed: 6);
        Assert.That(device.ReadScatter(1, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(io.Calls, Is.EqualTo(5));
            Assert.That(device.GetStats().WriteErrors + device.GetStats().ReadErrors, Is.Zero);
        });
    }

    [TestCase(LinuxVectoredFileIo.Einval)]
    [TestCase(LinuxVectoredFileIo.Enosys)]
    [TestCase(LinuxVectoredFileIo.Eopnotsupp)]
    public void RefusedCall_FallsBackToTheBounceBuffer_ForTheRestOfTheRun_AndForGood(int errno)
    {
        RequireLinux();

        // One and a half pages go vectored, then the OS refuses the call: the rest of the run goes the plain way.
        var io = new ScriptedVectoredFileIo { FailAfterBytes = Page + 2048, Errno = errno };
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(7);
        var data = SwapPages.MakeRun(7, 21);
        pages.Load(data);
        Assert.That(device.WriteGather(40, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.That(device.IsVectoredIoActive, Is.False);
        var calls = io.Calls;

        using var back = new NativePages(7, seed: 5);
        Assert.That(device.ReadScatter(40, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        var plain = new byte[7 * Page];
        Assert.That(device.ReadRun(40, plain).IsOk, Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(plain, Is.EqualTo(data));
            Assert.That(io.Calls, Is.EqualTo(calls), "no vectored call after the refusal");
            Assert.That(device.GetStats().WriteErrors, Is.Zero, "a refusal is not a write error");
        });
    }

    [Test]
    public void UnbindableImport_FallsBackAsARefusal([Values] bool entryPoint)
    {
        var io = new ScriptedVectoredFileIo { Throw = entryPoint ? new EntryPointNotFoundException("pwritev") : new DllNotFoundException("libc") };
        using var device = new FileSwapDevice(null, 64 * Page, io);
        using var pages = new NativePages(3);
        var data = SwapPages.MakeRun(3, 44);
        pages.Load(data);
        Assert.That(device.WriteGather(5, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        using var back = new NativePages(3, seed: 12);
        Assert.That(device.ReadScatter(5, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.Multiple(() =>
        {
            Assert.That(back.ToArray(), Is.EqualTo(data));
            Assert.That(device.IsVectoredIoActive, Is.False);
            Assert.That(io.Calls, Is.EqualTo(1), "tried once, then never again");
        });
    }

    [Test]
    public void WithoutVectoredCalls_GatheredTransfersGoThroughABounceBuffer_OrOneSpanWhenAdjacent()
    {
        using var device = new FileSwapDevice(null, 64 * Page, vectored: null);
        Assert.That(device.IsVectoredIoActive, Is.False);
        using var pages = new NativePages(5);
        var data = SwapPages.MakeRun(5, 31);
        pages.Load(data);
        Assert.That(device.WriteGather(2, pages.Addresses), Is.EqualTo(SwapIoResult.Success));
        using var back = new NativePages(5, seed: 7);
        Assert.That(device.ReadScatter(2, back.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.That(back.ToArray(), Is.EqualTo(data));

        // Adjacent pages (a run of consecutive frames) are one span: no copy, one call.
        var before = device.GetStats();
        unsafe
        {
            var adjacent = new byte[3 * Page];
            fixed (byte* p = adjacent)
            {
                nint[] addresses = [(nint)p, (nint)p + Page, (nint)p + (2 * Page)];
                Assert.That(device.ReadScatter(2, addresses).IsOk, Is.True);
            }

            Assert.That(adjacent, Is.EqualTo(data.AsSpan(0, 3 * Page).ToArray()));
        }

        Assert.That(device.GetStats().ReadCalls - before.ReadCalls, Is.EqualTo(1));
        Assert.That(device.VectoredCalls, Is.Zero);
    }

    [Test]
    public void BadGatheredTransfers_AreRefusedNamingTheRule()
    {
        using var device = new FileSwapDevice(null, 16 * Page, vectored: null);
        using var pages = new NativePages(2);
        var nullPage = Assert.Throws<ArgumentException>(() => device.WriteGather(1, [pages.Addresses[0], 0]));
        Assert.That(nullPage!.Message, Does.Contain("page 1").And.Contain("address 0"));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.ReadScatter(15, pages.Addresses), "runs past the last slot");
        Assert.Throws<ArgumentOutOfRangeException>(() => device.ReadScatter(0, pages.Addresses), "the header slot");
        Assert.Throws<ArgumentOutOfRangeException>(() => device.WriteGather(1, ReadOnlySpan<nint>.Empty), "an empty run");
    }

    private static void RequireLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("pwritev/preadv are called on Linux only; elsewhere the device always uses the bounce buffer (tested on its own)");
        }
    }
}

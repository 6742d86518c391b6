using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// A swap file on a file system that really runs out of space (a small tmpfs mounted for the test): the OS's ENOSPC
/// reaches the device as <see cref="SwapIoStatus.DeviceFull"/>, the reclaimer keeps the pages resident and dirty (no
/// data lost, no memory failure), and once space is freed a later pass writes them and they read back intact.
/// The file is an empty file the swap area reuses, so it is sparse: its blocks are taken at the first write, as with a
/// swap file made by <c>truncate</c> rather than <c>fallocate</c>. Needs Linux and the right to mount (root); the
/// tests ignore themselves with the reason otherwise.
/// </summary>
[NonParallelizable]
public sealed class SwapRealDiskFullTests
{
    private const int SwapPages = 48;
    private string _mountPoint = null!;
    private bool _mounted;

    [SetUp]
    public void MountSmallFileSystem()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("needs Linux (a tmpfs of a fixed size to fill)");
        }

        _mountPoint = Path.Combine(Path.GetTempPath(), "hv-diskfull-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_mountPoint);
        var (exit, error) = RunMount("-t", "tmpfs", "-o", $"size={(SwapPages + 16) * 4}k", "tmpfs", _mountPoint);
        if (exit != 0)
        {
            Directory.Delete(_mountPoint);
            Assert.Ignore($"cannot mount a small tmpfs to fill (mount exited {exit}: {error.Trim()}); run as root to include this test");
        }

        _mounted = true;
    }

    [TearDown]
    public void Unmount()
    {
        if (_mounted)
        {
            RunMount("-u", _mountPoint);
            _mounted = false;
        }

        if (Directory.Exists(_mountPoint))
        {
            Directory.Delete(_mountPoint, recursive: true);
        }
    }

    [Test]
    public void A_write_to_a_sparse_swap_file_on_a_full_disk_is_DeviceFull_and_succeeds_once_space_is_freed()
    {
        var swapPath = Path.Combine(_mountPoint, "swap");
        File.WriteAllBytes(swapPath, []);
        using var device = new FileSwapDevice(swapPath, SwapPages * Page);
        var filler = FillDisk();

        var page = new byte[Page];
        Array.Fill(page, (byte)0x5a);
        var full = device.Write(5, page);

        Assert.That(full.Status, Is.EqualTo(SwapIoStatus.DeviceFull), "ENOSPC from the OS");
        Assert.That(device.GetStats().WriteErrors, Is.EqualTo(1));

        File.Delete(filler);
        Assert.That(device.Write(5, page).Status, Is.EqualTo(SwapIoStatus.Ok));
        var back = new byte[Page];
        Assert.That(device.Read(5, back).Status, Is.EqualTo(SwapIoStatus.Ok));
        Assert.That(back, Is.EqualTo(page));
    }

    [Test]
    public void Swap_out_onto_a_full_disk_keeps_the_pages_resident_and_dirty_and_a_later_pass_writes_them()
    {
        var swapPath = Path.Combine(_mountPoint, "swap");
        File.WriteAllBytes(swapPath, []);
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.File, Path = swapPath, SizeBytes = SwapPages * Page },
        });
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 11);
        var filler = FillDisk();

        mm.Madvise(start, 16 * Page, Advice.PageOut);

        Assert.Multiple(() =>
        {
            Assert.That(host.Reclaim.Stats.SwapWriteErrors, Is.GreaterThan(0), "the OS refused the writes");
            Assert.That(host.Reclaim.Stats.Pswpout, Is.Zero);
            Assert.That(host.Reclaim.Stats.MemoryFailures, Is.Zero, "a full disk is not a memory failure");
            Assert.That(mm.Cgroup.UsagePages, Is.EqualTo(16), "every page still resident and charged");
            Assert.That(DirtyResidentPages(host, mm, start, 16), Is.EqualTo(16), "every page in memory (mapped or in the swap cache) and still dirty");
            Assert.That(host.Reclaim.Area!.GetStats().WriteErrors, Is.GreaterThan(0), "the swap area counts the refused writes");
        });
        AssertConsistent(host);
        Assert.That(CorruptPages(mm, start, 16, seed: 11), Is.Empty, "nothing was lost while the disk was full");

        File.Delete(filler);
        mm.Cgroup.MaxPages = 8;
        for (var step = 0; step < 32 && host.Reclaim.Stats.Pswpout < 8; step++)
        {
            host.Reclaim.Step(64);
        }

        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThanOrEqualTo(8), "with space freed, the dirty pages were written");
        AssertConsistent(host);
        mm.Cgroup.MaxPages = 1024;
        Assert.That(CorruptPages(mm, start, 16, seed: 11), Is.Empty, "and came back intact");
        AssertConsistent(host);
    }

    /// <summary>Pages of the range whose data is in memory and dirty: mapped (PTE or frame dirty) or unmapped into the swap cache.</summary>
    private static int DirtyResidentPages(Host host, Mm mm, Hva start, int pages)
    {
        var dirty = 0;
        for (var page = 0; page < pages; page++)
        {
            var pte = mm.PageTable.Read(start + ((ulong)page * Page));
            Pfn pfn;
            if (pte.IsPresent)
            {
                pfn = pte.Pfn;
            }
            else if (HostPteEncoding.Classify(pte) != HostPteKind.Swap || !host.Reclaim.Cache!.TryGetFrame(HostPteEncoding.SwapSlotOf(pte), out pfn))
            {
                continue;
            }

            if (host.Memory.Frame(pfn).Has(FrameFlags.Dirty) || (pte.IsPresent && pte.IsDirty))
            {
                dirty++;
            }
        }

        return dirty;
    }

    /// <summary>Writes a file until the file system refuses a byte more; returns its path.</summary>
    private string FillDisk()
    {
        var path = Path.Combine(_mountPoint, "filler");
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1);
        var block = new byte[(int)Page];
        try
        {
            while (true)
            {
                stream.Write(block);
            }
        }
        catch (IOException)
        {
            // The disk is full: exactly the state under test.
        }

        var free = new DriveInfo(_mountPoint).AvailableFreeSpace;
        Assert.That(free, Is.LessThan((long)Page), $"the file system still has {free} bytes free after filling it");
        return path;
    }

    private static (int Exit, string Error) RunMount(params string[] arguments)
    {
        var start = new ProcessStartInfo(arguments[0] == "-u" ? "umount" : "mount") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments[0] == "-u" ? arguments[1..] : arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, error);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            return (-1, exception.Message);
        }
    }
}

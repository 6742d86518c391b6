using System.Text;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

public sealed class FileSwapDeviceTests
{
    private string _folder = null!;

    [SetUp]
    public void SetUp()
    {
        _folder = Path.Combine(Path.GetTempPath(), "hv-swap-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_folder, recursive: true);

    [Test]
    public void TemporaryFile_IsUniqueInTheTempFolder_SizedUpFront_AndDeletedOnDispose()
    {
        string path;
        using (var device = new FileSwapDevice(null, 64 * 4096))
        using (var other = new FileSwapDevice(null, 64 * 4096))
        {
            path = device.Path;
            Assert.Multiple(() =>
            {
                Assert.That(device.IsTemporary, Is.True);
                Assert.That(Path.GetDirectoryName(path), Is.EqualTo(Path.GetFullPath(Path.GetTempPath()).TrimEnd(Path.DirectorySeparatorChar)));
                Assert.That(other.Path, Is.Not.EqualTo(path));
                Assert.That(new FileInfo(path).Length, Is.EqualTo(64 * 4096));
                Assert.That(device.SlotCount, Is.EqualTo(64));
                Assert.That(device.IsSynchronous, Is.False);
                Assert.That(device.Name, Is.EqualTo("file:" + path));
            });
        }

        Assert.That(File.Exists(path), Is.False, "the temporary swap file outlived its device");
    }

    [Test]
    public void HeaderSlot_CarriesTheSwapMagicAndLastPage()
    {
        var path = Path.Combine(_folder, "swap");
        using (new FileSwapDevice(path, 16 * 4096))
        {
        }

        var bytes = File.ReadAllBytes(path);
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.ASCII.GetString(bytes, 4086, 10), Is.EqualTo("SWAPSPACE2"));
            Assert.That(BitConverter.ToUInt32(bytes, 1024), Is.EqualTo(1), "version");
            Assert.That(BitConverter.ToUInt32(bytes, 1028), Is.EqualTo(15), "last_page");
        });
    }

    [Test]
    public void UserPath_IsKeptOnDispose_AndReusedAsASwapFile()
    {
        var path = Path.Combine(_folder, "swap");
        var page = SwapPages.Make(SwapPageKind.Random, 3);
        using (var device = new FileSwapDevice(path, 16 * 4096))
        {
            Assert.That(device.IsTemporary, Is.False);
            device.Write(3, page);
        }

        Assert.That(File.Exists(path), Is.True);
        using (var reused = new FileSwapDevice(path, 32 * 4096))
        {
            Assert.That(new FileInfo(path).Length, Is.EqualTo(32 * 4096));
            var read = new byte[4096];
            Assert.That(reused.Read(3, read).IsOk, Is.True);
        }
    }

    [Test]
    public void ExistingFileThatIsNotSwap_IsRefusedAndLeftAlone()
    {
        var path = Path.Combine(_folder, "precious.txt");
        File.WriteAllText(path, "do not overwrite me");
        var ex = Assert.Throws<SwapConfigurationException>(() => new FileSwapDevice(path, 16 * 4096))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Rule, Is.EqualTo(SwapRule.ExistingFileNotSwap));
            Assert.That(ex.Message, Does.Contain(path).And.Contain("not a swap file"));
            Assert.That(File.ReadAllText(path), Is.EqualTo("do not overwrite me"));
        });
    }

    [Test]
    public void EmptyExistingFile_IsTakenAsSwap()
    {
        var path = Path.Combine(_folder, "empty");
        File.WriteAllBytes(path, []);
        using var device = new FileSwapDevice(path, 8 * 4096);
        Assert.That(new FileInfo(path).Length, Is.EqualTo(8 * 4096));
    }

    [Test]
    public void PathInAMissingFolder_OrUnderAFile_OrAFolder_IsNotCreatable()
    {
        var file = Path.Combine(_folder, "plain");
        File.WriteAllText(file, "x");
        string[] paths = [Path.Combine(_folder, "missing", "swap"), Path.Combine(file, "swap"), _folder];
        foreach (var path in paths)
        {
            var ex = Assert.Throws<SwapConfigurationException>(() => new FileSwapDevice(path, 16 * 4096), path)!;
            Assert.That(ex.Rule, Is.EqualTo(SwapRule.PathNotCreatable), path);
            Assert.That(ex.Message, Does.Contain(path).And.Contain("cannot be created"), path);
        }
    }

    [Test]
    public void SizeLargerThanTheFreeDiskSpace_IsRefusedAndLeavesNoFile()
    {
        var path = Path.Combine(_folder, "huge");
        const ulong size = 1UL << 44; // 16 TiB: 2^32 slots, the most an area addresses
        var ex = Assert.Throws<SwapConfigurationException>(() => new FileSwapDevice(path, size))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Rule, Is.EqualTo(SwapRule.InsufficientDiskSpace));
            Assert.That(ex.Message, Does.Contain(path));
            Assert.That(File.Exists(path), Is.False);
        });
    }

    [TestCase(0UL, SwapRule.SizeZero)]
    [TestCase(4096UL + 1, SwapRule.SizeNotPageMultiple)]
    [TestCase(4096UL, SwapRule.SizeTooSmall)]
    [TestCase((1UL << 44) + 4096, SwapRule.SizeTooLarge)]
    public void BadSize_IsRefusedWithItsRule(ulong size, SwapRule rule)
    {
        var path = Path.Combine(_folder, "swap");
        var ex = Assert.Throws<SwapConfigurationException>(() => new FileSwapDevice(path, size))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Rule, Is.EqualTo(rule));
            Assert.That(ex.Message, Does.Contain(size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(File.Exists(path), Is.False);
        });
    }

    [Test]
    public void ShortFile_ReadsFailAsIoError_NamingTheSlot()
    {
        var path = Path.Combine(_folder, "swap");
        using var device = new FileSwapDevice(path, 16 * 4096);
        device.WriteRun(1, new byte[4 * 4096]);
        // The device holds the file's lock, so shorten it from outside, as another process would: slots 3.. are gone.
        using (var truncate = System.Diagnostics.Process.Start("truncate", ["-s", (3 * 4096).ToString(System.Globalization.CultureInfo.InvariantCulture), path]))
        {
            truncate.WaitForExit();
            Assert.That(truncate.ExitCode, Is.Zero);
        }

        var result = device.ReadRun(1, new byte[4 * 4096]);
        Assert.That(result, Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.IoError, 3)));
        Assert.That(device.GetStats().ReadErrors, Is.GreaterThan(0));
    }

    [Test]
    public void Discard_KeepsTheFileAllocatedAndCounts()
    {
        using var device = new FileSwapDevice(null, 16 * 4096);
        device.Discard(2, 3);
        Assert.That(device.GetStats().PagesDiscarded, Is.EqualTo(3));
        Assert.That(new FileInfo(device.Path).Length, Is.EqualTo(16 * 4096));
    }
}

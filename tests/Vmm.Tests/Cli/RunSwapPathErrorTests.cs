using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --host-mem … --swap PATH</c> where PATH cannot become a swap file: a folder, a path under a regular
/// file, an existing file that is not swap (left untouched). One <c>hv: error:</c> line naming the path and why,
/// exit 2, the guest never runs.
/// </summary>
public sealed class RunSwapPathErrorTests
{
    private string _folder = string.Empty;

    [SetUp]
    public void SetUp()
    {
        _folder = Path.Combine(Path.GetTempPath(), "hv-swap-errors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
        File.WriteAllText(Path.Combine(_folder, "notes.txt"), "not swap");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_folder, recursive: true);

    [TestCase("", "cannot be created: it is a folder")]
    [TestCase("notes.txt/swap", "cannot be created")]
    [TestCase("notes.txt", "is an existing file of 8 bytes that is not a swap file (no SWAPSPACE2 header): refusing to overwrite it")]
    public void ASwapPathThatCannotBecomeASwapFileIsOneErrorLineAndExitTwo(string relative, string reason)
    {
        var path = relative.Length == 0 ? _folder : Path.Combine(_folder, relative);

        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--host-mem", "64M", "--swap", path);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: --swap " + path).And.Contain($"'{path}' ").And.Contain(reason));
            Assert.That(result.Stderr, Does.Not.Contain(" at "), "no stack trace");
            Assert.That(result.Stdout, Is.Empty, "the guest did not run");
            Assert.That(File.ReadAllText(Path.Combine(_folder, "notes.txt")), Is.EqualTo("not swap"), "an existing file is left alone");
            Assert.That(Directory.GetFileSystemEntries(_folder), Has.Length.EqualTo(1), "nothing was created");
        });
    }
}

using System.Diagnostics;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>What one QEMU run of a sample guest gave: its exit status and the text it wrote to the debug console.</summary>
/// <param name="ExitStatus">QEMU's exit status: <c>(code&lt;&lt;1)|1</c> when the guest wrote its code to isa-debug-exit, 0 after a triple fault with <c>-no-reboot</c>.</param>
/// <param name="Console">Everything the guest wrote to port 0xE9.</param>
/// <param name="Stderr">QEMU's own messages.</param>
/// <param name="TimedOut">QEMU was still running at <see cref="Qemu.Timeout"/> and was killed.</param>
public sealed record QemuRun(int ExitStatus, string Console, string Stderr, bool TimedOut);

/// <summary>
/// Boots a sample guest image under <c>qemu-system-x86_64 -accel tcg</c> the way <c>guests/tests/qemucheck.sh</c> does:
/// PVH entry through <c>-kernel</c>, isa-debug-exit at 0xF4, the 0xE9 debug console (which the guests pick when it
/// answers their probe, as it does under <c>hv run</c>) captured to a file, no display, no serial, no reboot.
/// A test that needs QEMU is ignored, with the reason, where it is not installed.
/// </summary>
public static class Qemu
{
    /// <summary>The QEMU system emulator the oracle runs.</summary>
    public const string Executable = "qemu-system-x86_64";

    /// <summary>How long one guest may run under QEMU before the test fails (the oracle's cases take well under a second).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>The full path of <see cref="Executable"/> on PATH, or null.</summary>
    public static string? FindOnPath() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, Executable))
            .FirstOrDefault(File.Exists);

    /// <summary>The full path of <see cref="Executable"/> on PATH; ignores the calling test when it is not there.</summary>
    public static string Require()
    {
        var path = FindOnPath();
        if (path is null)
        {
            Assert.Ignore($"{Executable} is not on PATH: the QEMU oracle needs QEMU's TCG (apt-get install qemu-system-x86)");
        }

        return path!;
    }

    /// <summary>The arguments of one run: QEMU's own PVH loader, the devices the guests use, <paramref name="memoryMiB"/> of RAM.</summary>
    /// <param name="image">The guest ELF (booted through its PVH note).</param>
    /// <param name="commandLine">The guest command line; no <c>-append</c> when empty, as <c>hv run</c> without <c>--cmdline</c>.</param>
    /// <param name="consoleFile">Where the 0xE9 debug console is written.</param>
    /// <param name="memoryMiB">Guest RAM, which fw_cfg reports to the guest.</param>
    /// <param name="cpus">vCPUs (<c>-smp</c>).</param>
    public static IReadOnlyList<string> Arguments(string image, string commandLine, string consoleFile, int memoryMiB, int cpus = 1)
    {
        var arguments = new List<string>
        {
            "-accel", "tcg", "-machine", "q35", "-m", $"{memoryMiB}M", "-smp", $"{cpus}",
            "-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-debugcon", "file:" + consoleFile,
            "-kernel", image,
        };
        if (commandLine.Length > 0)
        {
            arguments.Add("-append");
            arguments.Add(commandLine);
        }

        return arguments;
    }

    /// <summary>Boots <paramref name="image"/> under QEMU TCG and waits for it to stop, or kills it at <see cref="Timeout"/>.</summary>
    /// <remarks>It never asserts, so it may run on another thread while the test runs the other side.</remarks>
    /// <param name="qemu">The emulator, from <see cref="Require"/>.</param>
    /// <param name="image">The guest ELF.</param>
    /// <param name="commandLine">The guest command line (may be empty).</param>
    /// <param name="memoryMiB">Guest RAM in MiB.</param>
    /// <param name="cpus">vCPUs.</param>
    public static QemuRun Run(string qemu, string image, string commandLine, int memoryMiB, int cpus = 1)
    {
        var directory = Path.Combine(Path.GetTempPath(), "hv-qemu-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            var consoleFile = Path.Combine(directory, "debugcon.txt");
            var start = new ProcessStartInfo(qemu, Arguments(image, commandLine, consoleFile, memoryMiB, cpus))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            var timedOut = !process.WaitForExit(Timeout);
            if (timedOut)
            {
                process.Kill(entireProcessTree: true);
            }

            process.WaitForExit();
            _ = stdout.Result;
            var console = File.Exists(consoleFile) ? File.ReadAllText(consoleFile) : string.Empty;
            return new QemuRun(timedOut ? -1 : process.ExitCode, console, stderr.Result, timedOut);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

using System.Diagnostics;

namespace Hypervisor.Bench.Vmm;

/// <summary>
/// Runs a sample guest under <c>qemu-system-x86_64 -accel tcg</c> the way the QEMU oracle tests do (PVH entry through
/// <c>-kernel</c>, isa-debug-exit at 0xF4, the 0xE9 debug console to a file, no display, no reboot) and times the
/// whole process, start-up included.
/// </summary>
internal static class QemuTcgProcess
{
    /// <summary>The QEMU system emulator.</summary>
    public const string Executable = "qemu-system-x86_64";

    /// <summary>QEMU's exit status when the guest wrote 0 to isa-debug-exit: <c>(0&lt;&lt;1)|1</c>.</summary>
    public const int GuestSuccessStatus = 1;

    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>The full path of <see cref="Executable"/> on PATH, or null when it is not installed.</summary>
    public static string? FindOnPath() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, Executable))
            .FirstOrDefault(File.Exists);

    /// <summary>Boots <paramref name="image"/> with <paramref name="commandLine"/> and waits for QEMU to exit.</summary>
    /// <param name="qemu">The emulator (<see cref="FindOnPath"/>).</param>
    /// <param name="image">The guest ELF, booted through its PVH note.</param>
    /// <param name="commandLine">The guest command line (<c>-append</c>).</param>
    /// <param name="memoryMiB">Guest RAM.</param>
    /// <returns>QEMU's wall time from process start to exit, its exit status and what the guest wrote to port 0xE9 followed by QEMU's own messages.</returns>
    /// <exception cref="TimeoutException">QEMU ran longer than two minutes (it is killed).</exception>
    public static (TimeSpan Elapsed, int ExitStatus, string Output) Run(string qemu, string image, string commandLine, int memoryMiB)
    {
        var directory = Path.Combine(Path.GetTempPath(), "hv-bench-qemu-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            var consoleFile = Path.Combine(directory, "debugcon.txt");
            var start = new ProcessStartInfo(qemu)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            foreach (var argument in new[]
            {
                "-accel", "tcg", "-machine", "q35", "-m", $"{memoryMiB}M", "-smp", "1",
                "-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-debugcon", "file:" + consoleFile,
                "-kernel", image, "-append", commandLine,
            })
            {
                start.ArgumentList.Add(argument);
            }

            var started = Stopwatch.GetTimestamp();
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{qemu} did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new TimeoutException($"{qemu} ran {image} '{commandLine}' for more than {Timeout.TotalMinutes} minutes");
            }

            var elapsed = Stopwatch.GetElapsedTime(started);
            _ = stdout.Result;
            var console = File.Exists(consoleFile) ? File.ReadAllText(consoleFile) : string.Empty;
            return (elapsed, process.ExitCode, console + stderr.Result);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

using System.Diagnostics;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// Debian's chromium in headless mode: loads a file, runs its scripts, and returns the DOM after them
/// (<c>--dump-dom</c>) with the browser's log, where console messages and uncaught script errors appear as
/// <c>:CONSOLE</c> lines. <see cref="Find"/> is null where no chromium is installed (.ci/run installs it where it can).
/// </summary>
public static class HeadlessBrowser
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    /// <summary>The browser's path: <c>HV_CHROMIUM</c> when set, else chromium (or chromium-browser) on PATH; null when none.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("HV_CHROMIUM") is { Length: > 0 } given)
        {
            return File.Exists(given) ? given : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(folder => new[] { "chromium", "chromium-browser" }.Select(name => Path.Combine(folder, name)))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>Loads <paramref name="file"/> and returns the DOM after its scripts ran and the browser's log lines that are console messages.</summary>
    public static (string Dom, IReadOnlyList<string> Console, int ExitCode) DumpDom(string browser, string file)
    {
        var profile = Directory.CreateTempSubdirectory("hv-chromium-");
        try
        {
            var start = new ProcessStartInfo(browser)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in new[]
            {
                "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
                "--enable-logging=stderr", "--v=0", $"--user-data-dir={profile.FullName}", "--dump-dom", new Uri(file).AbsoluteUri,
            })
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{browser} did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{browser} did not finish within {Timeout.TotalSeconds} s");
            }

            process.WaitForExit();
            var console = stderr.Result.Split('\n').Where(l => l.Contains(":CONSOLE", StringComparison.Ordinal)).ToList();
            return (stdout.Result, console, process.ExitCode);
        }
        finally
        {
            try
            {
                profile.Delete(recursive: true);
            }
            catch (IOException)
            {
                // The browser's last writes can race the cleanup; a temporary folder is left behind.
            }
        }
    }
}

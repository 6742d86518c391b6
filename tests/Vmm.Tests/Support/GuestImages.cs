using System.Diagnostics;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// Finds the repository root and the sample guest images (<c>guests/build/*.elf</c>), building them once with
/// <c>make -C guests</c> when one is missing; a test that needs an image is ignored, with the reason, when the
/// images cannot be built here (no make or gcc, or the build failed).
/// </summary>
public static class GuestImages
{
    private static readonly object BuildLock = new();
    private static string? _buildFailure;
    private static bool _buildTried;

    /// <summary>The directory holding <c>Hypervisor.sln</c> above the test assembly, or null when there is none.</summary>
    public static string? FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Hypervisor.sln")))
            {
                return dir.FullName;
            }
        }

        return null;
    }

    /// <summary>The repository root; ignores the calling test when it cannot be found.</summary>
    public static string RepositoryRoot()
    {
        var root = FindRepositoryRoot();
        if (root is null)
        {
            Assert.Ignore($"no Hypervisor.sln above {AppContext.BaseDirectory}: the guest images cannot be found");
        }

        return root!;
    }

    /// <summary>The path of <c>guests/build/<paramref name="guest"/>.elf</c>, building the guests first if it is missing.</summary>
    /// <param name="guest">The guest's name, e.g. <c>hello</c>.</param>
    /// <returns>An existing image file; the calling test is ignored when it cannot be built.</returns>
    public static string ImagePath(string guest)
    {
        var root = RepositoryRoot();
        var path = Path.Combine(root, "guests", "build", guest + ".elf");
        if (File.Exists(path))
        {
            return path;
        }

        lock (BuildLock)
        {
            if (!_buildTried)
            {
                _buildTried = true;
                _buildFailure = Build(Path.Combine(root, "guests"));
            }
        }

        if (_buildFailure is not null)
        {
            Assert.Ignore(_buildFailure);
        }

        if (!File.Exists(path))
        {
            Assert.Ignore($"make -C guests did not produce {path}");
        }

        return path;
    }

    /// <summary>The cases of <c>guests/tests/expected.txt</c>, or an empty list when the file cannot be found.</summary>
    /// <remarks>Safe during test discovery: it never asserts.</remarks>
    public static IReadOnlyList<GuestCase> ExpectedCases()
    {
        var root = FindRepositoryRoot();
        var path = root is null ? null : Path.Combine(root, "guests", "tests", "expected.txt");
        if (path is null || !File.Exists(path))
        {
            return [];
        }

        return File.ReadAllLines(path)
            .Where(line => line.Trim().Length > 0 && !line.TrimStart().StartsWith('#'))
            .Select(GuestCase.Parse)
            .ToList();
    }

    // Returns null on success, else why the images cannot be built.
    private static string? Build(string guestsDirectory)
    {
        foreach (var tool in new[] { "make", "gcc" })
        {
            if (!OnPath(tool))
            {
                return $"'{tool}' is not on PATH: the sample guests cannot be built (apt-get install make gcc)";
            }
        }

        var start = new ProcessStartInfo("make", ["-C", guestsDirectory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var make = Process.Start(start)!;
        var stdout = make.StandardOutput.ReadToEndAsync();
        var stderr = make.StandardError.ReadToEnd();
        make.WaitForExit();
        _ = stdout.Result;
        return make.ExitCode == 0 ? null : $"make -C {guestsDirectory} failed with exit code {make.ExitCode}: {stderr.Trim()}";
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, tool)));
}

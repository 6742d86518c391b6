using System.Runtime.InteropServices;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// Every writable KSM knob as found, to put back after a benchmark changed some. While a snapshot is live, process
/// exit, an unhandled exception and SIGINT/SIGTERM/SIGHUP restore it too, so an interrupted run does not leave the
/// machine's ksmd running flat out.
/// </summary>
/// <remarks>
/// <c>run</c> is written 0 first and its saved value last: no knob changes under a scanning ksmd, and a ksmd that
/// was stopped stays stopped. A knob whose value is already the saved one is not written (writing
/// <c>merge_across_nodes</c> fails while pages are shared, even to its current value).
/// </remarks>
internal sealed class LinuxKsmKnobs : IDisposable
{
    private const string Run = "run";

    private readonly List<(string Name, string Value)> _saved;
    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly Lock _lock = new();
    private bool _restored;

    private LinuxKsmKnobs(List<(string Name, string Value)> saved)
    {
        _saved = saved;
        AppDomain.CurrentDomain.ProcessExit += OnExit;
        AppDomain.CurrentDomain.UnhandledException += OnExit;
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP })
        {
            _signals.Add(PosixSignalRegistration.Create(signal, _ => OnExit(null, EventArgs.Empty)));
        }
    }

    /// <summary>The saved value of <paramref name="name"/>, or null if it is not a writable knob here.</summary>
    public string? SavedValue(string name) => _saved.Find(k => k.Name == name).Value;

    /// <summary>Reads every writable knob under <see cref="LinuxKsm.SysfsDirectory"/>.</summary>
    public static LinuxKsmKnobs Save()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("KSM's sysfs knobs exist only on Linux");
        }

        var saved = new List<(string, string)>();
        foreach (var path in Directory.GetFiles(LinuxKsm.SysfsDirectory).Order(StringComparer.Ordinal))
        {
            if ((File.GetUnixFileMode(path) & UnixFileMode.UserWrite) != 0)
            {
                var name = Path.GetFileName(path);
                saved.Add((name, Selected(LinuxKsm.Read(name))));
            }
        }

        return new LinuxKsmKnobs(saved);
    }

    /// <summary>Sets a knob if this kernel has it (newer knobs such as <c>smart_scan</c> are absent on older kernels).</summary>
    public bool TrySet(string name, string value)
    {
        if (SavedValue(name) is null)
        {
            return false;
        }

        LinuxKsm.Write(name, value);
        return true;
    }

    /// <summary>Puts every knob back (run stopped first, restored last). Idempotent; reports every knob that failed.</summary>
    public void Restore()
    {
        lock (_lock)
        {
            if (_restored)
            {
                return;
            }

            _restored = true;
            var failures = new List<string>();
            Put(Run, "0", failures);
            foreach (var (name, value) in _saved)
            {
                if (name != Run && Selected(LinuxKsm.Read(name)) != value)
                {
                    Put(name, value, failures);
                }
            }

            Put(Run, SavedValue(Run) ?? "0", failures);
            if (failures.Count > 0)
            {
                throw new InvalidOperationException($"could not restore KSM knobs: {string.Join("; ", failures)}");
            }
        }
    }

    /// <summary>Restores the knobs and drops the exit and signal hooks.</summary>
    public void Dispose()
    {
        try
        {
            Restore();
        }
        finally
        {
            AppDomain.CurrentDomain.ProcessExit -= OnExit;
            AppDomain.CurrentDomain.UnhandledException -= OnExit;
            _signals.ForEach(s => s.Dispose());
        }
    }

    /// <summary>A choice knob reads as "[none] scan-time"; the bracketed word is its value.</summary>
    private static string Selected(string text)
    {
        var open = text.IndexOf('[', StringComparison.Ordinal);
        var close = text.IndexOf(']', StringComparison.Ordinal);
        return open >= 0 && close > open ? text[(open + 1)..close] : text;
    }

    private static void Put(string name, string value, List<string> failures)
    {
        try
        {
            LinuxKsm.Write(name, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            failures.Add($"{name}={value}: {e.Message}");
        }
    }

    private void OnExit(object? sender, EventArgs e)
    {
        try
        {
            Restore();
        }
        catch (InvalidOperationException failure)
        {
            Console.Error.WriteLine(failure.Message);
        }
    }
}

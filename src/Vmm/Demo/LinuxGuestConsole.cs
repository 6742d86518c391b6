namespace Hypervisor.Vmm.Demo;

/// <summary>
/// What the demos read from the Linux guest's console (<c>guests/linux/init</c> and memtest): the kernel's banner, the
/// userland lines in order and memtest's verdict. Lines arrive on the vCPU's thread; the
/// properties are read from the demo's.
/// </summary>
internal sealed class LinuxGuestConsole
{
    private readonly List<string> _userland = [];
    private volatile string? _banner;
    private volatile string? _verdict;

    /// <summary>The kernel's "Linux version …" line from that phrase on, or null before it.</summary>
    public string? Banner => _banner;

    /// <summary>memtest's "memtest: OK …" or "memtest: FAIL …" line, or null before it.</summary>
    public string? Verdict => _verdict;

    /// <summary>The lines /init and memtest printed so far, in order.</summary>
    public string[] UserlandLines
    {
        get
        {
            lock (_userland)
            {
                return [.. _userland];
            }
        }
    }

    /// <summary>Takes one console line.</summary>
    /// <param name="line">The line, without its end.</param>
    public void OnLine(string line)
    {
        if (line.StartsWith("init: ", StringComparison.Ordinal) || line.StartsWith("memtest: ", StringComparison.Ordinal))
        {
            lock (_userland)
            {
                _userland.Add(line);
            }
        }

        if (line.StartsWith("memtest: OK", StringComparison.Ordinal) || line.StartsWith("memtest: FAIL", StringComparison.Ordinal))
        {
            _verdict = line;
        }
        else if (_banner is null && line.Contains("Linux version ", StringComparison.Ordinal))
        {
            _banner = line[line.IndexOf("Linux version ", StringComparison.Ordinal)..];
        }
    }
}

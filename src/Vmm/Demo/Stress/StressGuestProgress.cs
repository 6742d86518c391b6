using System.Globalization;
using System.Text.RegularExpressions;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The stress guest as its console shows it: its layout line, each vCPU's passes (pages verified, corrupted, found
/// discarded), the corrupted pages it named and its verdict. Lines arrive on the vCPUs' threads; every figure may be
/// read from any thread.
/// </summary>
internal sealed partial class StressGuestProgress
{
    private const int MaxCorruptionLines = 20;
    private readonly Lock _lock = new();
    private readonly List<string> _corruptionLines = [];
    private long _passes;
    private long _verified;
    private long _corrupted;
    private long _discarded;
    private long _controlGpa = -1;
    private long _dataGpa = -1;
    private string? _verdict;

    /// <summary>The control page's gpa the guest printed, or null before its first line.</summary>
    public ulong? ControlGpa => Interlocked.Read(ref _controlGpa) is var v && v >= 0 ? (ulong)v : null;

    /// <summary>The data area's gpa the guest printed, or null before its first line.</summary>
    public ulong? DataGpa => Interlocked.Read(ref _dataGpa) is var v && v >= 0 ? (ulong)v : null;

    /// <summary>Passes completed, every vCPU's summed.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Pages verified by the completed passes.</summary>
    public long PagesVerified => Interlocked.Read(ref _verified);

    /// <summary>Pages that read back neither as written nor as a discard the host announced.</summary>
    public long CorruptedPages => Interlocked.Read(ref _corrupted);

    /// <summary>Pages that read back as zeros after an announced MADV_DONTNEED.</summary>
    public long DiscardedPages => Interlocked.Read(ref _discarded);

    /// <summary>The guest's last line ("stress: OK, ..." or "stress: FAIL, ..."), or null before it.</summary>
    public string? Verdict => Volatile.Read(ref _verdict);

    /// <summary>The corrupted pages the guest named (the first ones).</summary>
    public IReadOnlyList<string> CorruptionLines
    {
        get
        {
            lock (_lock)
            {
                return [.. _corruptionLines];
            }
        }
    }

    /// <summary>Takes one console line.</summary>
    public void OnLine(string line)
    {
        if (PassLine().Match(line) is { Success: true } pass)
        {
            Interlocked.Increment(ref _passes);
            Interlocked.Add(ref _verified, Parse(pass.Groups[1]));
            Interlocked.Add(ref _corrupted, Parse(pass.Groups[2]));
            Interlocked.Add(ref _discarded, Parse(pass.Groups[3]));
        }
        else if (LayoutLine().Match(line) is { Success: true } layout)
        {
            Interlocked.Exchange(ref _controlGpa, (long)ulong.Parse(layout.Groups[1].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            Interlocked.Exchange(ref _dataGpa, (long)ulong.Parse(layout.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        else if (line.StartsWith("stress: OK", StringComparison.Ordinal) || line.StartsWith("stress: FAIL", StringComparison.Ordinal))
        {
            Volatile.Write(ref _verdict, line);
        }
        else if (line.Contains(" corrupted: ", StringComparison.Ordinal))
        {
            lock (_lock)
            {
                if (_corruptionLines.Count < MaxCorruptionLines)
                {
                    _corruptionLines.Add(line);
                }
            }
        }
    }

    private static long Parse(Group group) => long.Parse(group.ValueSpan, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^stress: cpu \d+ pass \d+: (\d+) verified, (\d+) corrupted, (\d+) discarded$")]
    private static partial Regex PassLine();

    [GeneratedRegex(@"^stress: control at 0x([0-9a-f]+), data at 0x([0-9a-f]+),")]
    private static partial Regex LayoutLine();
}

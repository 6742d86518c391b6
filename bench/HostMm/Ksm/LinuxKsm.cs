using System.Globalization;
using System.Runtime.InteropServices;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// The real kernel's KSM as a benchmark peer: <c>madvise</c> (MERGEABLE, NOHUGEPAGE) through libc and the knobs and
/// counters under <c>/sys/kernel/mm/ksm</c>. A knob write to <c>run</c> takes ksmd's mutex, so it returns only once
/// ksmd has finished the batch it was scanning.
/// </summary>
internal static partial class LinuxKsm
{
    /// <summary>Where the kernel exposes KSM (absent without CONFIG_KSM).</summary>
    public const string SysfsDirectory = "/sys/kernel/mm/ksm";

    /// <summary><c>MADV_MERGEABLE</c>: the range joins KSM's scan.</summary>
    public const int MadvMergeable = 12;

    /// <summary><c>MADV_NOHUGEPAGE</c>: 4 KiB pages only, as the simulated host maps them.</summary>
    public const int MadvNoHugePage = 15;

    /// <summary>The knobs the ksmd benchmark writes (the rest are saved and restored all the same).</summary>
    private static readonly string[] ControlledKnobs = ["run", "pages_to_scan", "sleep_millisecs"];

    /// <summary>
    /// Whether this process can drive ksmd: Linux, KSM built in, and the knobs it writes writable (root, sysfs
    /// mounted read-write). Otherwise <paramref name="reason"/> says what is missing.
    /// </summary>
    public static bool CanControl(out string reason)
    {
        if (!OperatingSystem.IsLinux())
        {
            reason = "not Linux";
            return false;
        }

        if (!Directory.Exists(SysfsDirectory))
        {
            reason = $"{SysfsDirectory} does not exist (kernel without CONFIG_KSM)";
            return false;
        }

        foreach (var knob in ControlledKnobs)
        {
            try
            {
                using var stream = new FileStream(PathOf(knob), FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                reason = $"{PathOf(knob)} is not writable ({e.Message}); KSM's knobs need root and a read-write sysfs";
                return false;
            }
        }

        reason = "";
        return true;
    }

    /// <summary>The raw text of a knob or counter, trimmed.</summary>
    public static string Read(string name) => File.ReadAllText(PathOf(name)).Trim();

    /// <summary>A numeric counter or knob.</summary>
    public static long ReadNumber(string name)
    {
        var text = Read(name);
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"{PathOf(name)} holds '{text}', not a number");
    }

    /// <summary>Writes a knob (one write call, as <c>echo value &gt; knob</c>).</summary>
    public static void Write(string name, string value)
    {
        using var stream = new FileStream(PathOf(name), FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        stream.Write(System.Text.Encoding.ASCII.GetBytes(value + "\n"));
    }

    /// <summary>Writes a numeric knob.</summary>
    public static void Write(string name, long value) => Write(name, value.ToString(CultureInfo.InvariantCulture));

    /// <summary>The path of a file under <see cref="SysfsDirectory"/>.</summary>
    public static string PathOf(string name) => Path.Combine(SysfsDirectory, name);

    /// <summary><c>madvise(address, length, advice)</c>; throws with the errno on failure.</summary>
    public static void Madvise(nint address, nuint length, int advice)
    {
        if (MadviseNative(address, length, advice) != 0)
        {
            throw new InvalidOperationException($"madvise(0x{address:x}, {length}, {advice}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int MadviseNative(nint address, nuint length, int advice);
}

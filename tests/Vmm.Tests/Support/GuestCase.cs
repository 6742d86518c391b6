using System.Globalization;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// One line of <c>guests/tests/expected.txt</c>: a guest (with <c>--smp N</c> after its name for a machine of N vCPUs),
/// its command line, QEMU's exit status and text its output must contain.
/// </summary>
/// <param name="Guest">The guest's name (the image is <c>guests/build/&lt;Guest&gt;.elf</c>).</param>
/// <param name="CommandLine">The guest command line (may be empty).</param>
/// <param name="HostExitStatus">The exit status QEMU's isa-debug-exit gives: <c>(code&lt;&lt;1)|1</c>.</param>
/// <param name="ExpectedText">Text that must appear in the guest's output.</param>
public sealed record GuestCase(string Guest, string CommandLine, int HostExitStatus, string ExpectedText)
{
    /// <summary>vCPUs of the machine (<c>hv run --smp</c>, QEMU's <c>-smp</c>); 1 unless the guest field says <c>--smp N</c>.</summary>
    public int Cpus { get; init; } = 1;

    /// <summary>The guest's own exit code: the value it wrote to the debug-exit port, <c>(status - 1) / 2</c>.</summary>
    public int GuestExitCode => (HostExitStatus - 1) / 2;

    /// <summary>Parses one <c>guest|cmdline|status|text</c> line.</summary>
    /// <param name="line">The line, without comment or blank lines.</param>
    /// <returns>The case.</returns>
    /// <exception cref="FormatException">The line does not have four fields or the status is not a number.</exception>
    public static GuestCase Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var fields = line.Split('|', 4);
        if (fields.Length != 4 || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var status))
        {
            throw new FormatException($"expected.txt line '{line}' is not guest|cmdline|status|text");
        }

        var guest = fields[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var cpus = 1;
        if (guest.Length == 0
            || (guest.Length > 1 && (guest.Length != 3 || guest[1] != "--smp" || !int.TryParse(guest[2], NumberStyles.None, CultureInfo.InvariantCulture, out cpus) || cpus < 1)))
        {
            throw new FormatException($"expected.txt line '{line}': the guest field is a name, optionally followed by --smp N");
        }

        return new GuestCase(guest[0], fields[1].Trim(), status, fields[3].TrimEnd()) { Cpus = cpus };
    }

    /// <inheritdoc />
    public override string ToString() =>
        (Cpus == 1 ? Guest : $"{Guest} --smp {Cpus}") + (CommandLine.Length == 0 ? string.Empty : $" {CommandLine}");
}

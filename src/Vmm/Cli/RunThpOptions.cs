using System.CommandLine;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The transparent huge page option of <c>hv run</c>: <c>--thp always|madvise|never</c>, the simulated host's THP mode
/// (<c>/sys/kernel/mm/transparent_hugepage/enabled</c>). Emulated only: on kvm the real kernel's THP backs guest RAM,
/// and its mode is not ours to set, so the option is a usage error there.
/// </summary>
internal sealed class RunThpOptions
{
    private RunThpOptions()
    {
        Thp = new Option<ThpMode>("--thp")
        {
            Description = "Emulated only: the simulated host's transparent huge page mode: 'never' (default), 'madvise' (the VMM advises guest RAM MADV_HUGEPAGE, as QEMU does) or 'always'. Guest RAM is then 2 MiB-aligned, host faults map 2 MiB pages and the EPT maps them with 2 MiB leaves (pages_2m in the report).",
            HelpName = "always|madvise|never",
            DefaultValueFactory = _ => ThpMode.Never,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
                switch (text.ToLowerInvariant())
                {
                    case "never":
                        return ThpMode.Never;
                    case "madvise":
                        return ThpMode.Madvise;
                    case "always":
                        return ThpMode.Always;
                    default:
                        result.AddError($"--thp expects always, madvise or never, got '{text}'");
                        return ThpMode.Never;
                }
            },
        };
        Thp.CompletionSources.Add("always", "madvise", "never");
    }

    /// <summary><c>--thp</c>.</summary>
    public Option<ThpMode> Thp { get; }

    /// <summary>Every option, in help order.</summary>
    public IEnumerable<Option> All => [Thp];

    /// <summary>Creates the options.</summary>
    public static RunThpOptions Create() => new();

    /// <summary>
    /// Applies the parsed option to <paramref name="options"/> (accelerator set). Returns false with one line naming the
    /// option, the value and the rule when a mode other than never is given on kvm.
    /// </summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="options">The VM options so far.</param>
    /// <param name="applied">The options with the THP mode.</param>
    /// <param name="error">The error line (without the <c>hv: error:</c> prefix).</param>
    public bool TryApply(ParseResult parseResult, VmOptions options, out VmOptions applied, out string? error)
    {
        applied = options;
        error = null;
        var mode = parseResult.GetValue(Thp);
        if (mode != ThpMode.Never && options.Accelerator != AcceleratorKind.Emulated)
        {
            error = $"--thp {Name(mode)} needs --accel emulated: under kvm guest RAM is the real kernel's memory, whose THP mode is /sys/kernel/mm/transparent_hugepage/enabled, not the simulated host's";
            return false;
        }

        applied = options with { TransparentHugePages = mode };
        return true;
    }

    /// <summary>The mode as <c>--thp</c> and sysfs spell it.</summary>
    /// <param name="mode">The mode.</param>
    public static string Name(ThpMode mode) => mode switch
    {
        ThpMode.Always => "always",
        ThpMode.Madvise => "madvise",
        _ => "never",
    };
}

using System.CommandLine;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The KSM options of <c>hv run</c>: <c>--ksm</c> (guest RAM mergeable, the host's ksmd running, as QEMU's
/// <c>mem-merge=on</c>), <c>--ksm-pages-to-scan N</c> and <c>--ksm-sleep MS</c> (ksmd's knobs, which need
/// <c>--ksm</c>), and <c>--legacy-change-pte</c> (the host issues change_pte as Linux 2.6.32–6.9; emulated only).
/// </summary>
internal sealed class RunKsmOptions
{
    private RunKsmOptions()
    {
        Ksm = new Option<bool>("--ksm")
        {
            Description = "Mark guest RAM mergeable and run the host's KSM scanner (ksmd), as QEMU's mem-merge=on: equal pages of every VM on the host merge into one read-only copy, a guest write breaks it copy-on-write. On kvm the real kernel's KSM must be writable (/sys/kernel/mm/ksm/run).",
        };
        PagesToScan = CliOptions.BoundedInt(
            "--ksm-pages-to-scan",
            "With --ksm: pages per ksmd batch (Linux's pages_to_scan; default 2000, 20x Linux's 100, so a few guests merge within seconds).",
            2000,
            1,
            VmOptions.MaxKsmPagesToScan);
        Sleep = CliOptions.BoundedInt("--ksm-sleep", "With --ksm: ksmd's sleep between batches in ms (Linux's sleep_millisecs).", 20, 0, VmOptions.MaxKsmSleepMilliseconds);
        LegacyChangePte = new Option<bool>("--legacy-change-pte")
        {
            Description = "Emulated only: the host also calls the change_pte notifier when a KSM merge or a COW break installs a new PTE, as Linux 2.6.32-6.9 did; the report counts how often the EPT MMU found an spte to change.",
        };
    }

    /// <summary><c>--ksm</c>.</summary>
    public Option<bool> Ksm { get; }

    /// <summary><c>--ksm-pages-to-scan</c>.</summary>
    public Option<int> PagesToScan { get; }

    /// <summary><c>--ksm-sleep</c>.</summary>
    public Option<int> Sleep { get; }

    /// <summary><c>--legacy-change-pte</c>.</summary>
    public Option<bool> LegacyChangePte { get; }

    /// <summary>Every option, in help order.</summary>
    public IEnumerable<Option> All => [Ksm, PagesToScan, Sleep, LegacyChangePte];

    /// <summary>Creates the options.</summary>
    public static RunKsmOptions Create() => new();

    /// <summary>
    /// Applies the parsed options to <paramref name="options"/> (accelerator set). Returns false with one line naming the
    /// option and the rule when a knob is given without <c>--ksm</c>, <c>--legacy-change-pte</c> on kvm, or <c>--ksm</c>
    /// on kvm where the real kernel's KSM cannot be controlled.
    /// </summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="options">The VM options so far.</param>
    /// <param name="applied">The options with the KSM settings.</param>
    /// <param name="error">The error line (without the <c>hv: error:</c> prefix).</param>
    public bool TryApply(ParseResult parseResult, VmOptions options, out VmOptions applied, out string? error)
    {
        applied = options;
        error = null;
        var ksm = parseResult.GetValue(Ksm);
        if (!ksm && new Option[] { PagesToScan, Sleep }.FirstOrDefault(o => parseResult.GetResult(o) is { Implicit: false }) is { } knob)
        {
            error = $"{knob.Name} needs --ksm: without it no guest RAM is mergeable and ksmd does not run";
            return false;
        }

        var legacy = parseResult.GetValue(LegacyChangePte);
        if (legacy && options.Accelerator != AcceleratorKind.Emulated)
        {
            error = "--legacy-change-pte needs --accel emulated: it changes the simulated host's notifier calls, and the kvm accelerator's host is the real kernel";
            return false;
        }

        var candidate = options with
        {
            Ksm = ksm,
            KsmPagesToScan = parseResult.GetValue(PagesToScan),
            KsmSleepMilliseconds = parseResult.GetValue(Sleep),
            LegacyChangePte = legacy,
        };
        try
        {
            candidate.Validate();
        }
        catch (VmOptionsException exception) when (exception.Rule == VmOptionRule.Ksm)
        {
            error = $"--ksm: {RunHostMemoryOptions.WithoutParameter(exception)}";
            return false;
        }

        applied = candidate;
        return true;
    }
}

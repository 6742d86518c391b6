using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The host-memory options of <c>hv run</c>: <c>--host-mem SIZE</c> (a memory cgroup limit for the VM's host process)
/// and what it enables: <c>--swap PATH|file|zram</c>, <c>--swap-size SIZE</c>, <c>--swap-io buffered|direct</c>, <c>--lru classic|mglru</c>,
/// <c>--secondary-aging on|off</c>, <c>--inject-swap-errors RATE</c>. Each of the others without <c>--host-mem</c> is a
/// usage error, as are a limit below the VM's minimum or above the machine's RAM.
/// </summary>
internal sealed class RunHostMemoryOptions
{
    /// <summary>The <c>--swap</c> value for the default: a new swap file in the temp folder, removed at exit.</summary>
    public const string TempFile = "file";

    /// <summary>The <c>--swap</c> value for the compressed in-memory device.</summary>
    public const string Zram = "zram";

    private RunHostMemoryOptions()
    {
        HostMem = CliOptions.Size(
            "--host-mem",
            null,
            "Emulated only: host memory the VM's process may use (a memory cgroup's memory.max); guest RAM beyond it is swapped. With several VMs the limit is per VM (one cgroup each) and the swap device is the host's, shared. At least 4M and 1/64 of guest RAM, at most the machine's RAM",
            0,
            VmOptions.MinHostMemoryFloorBytes,
            1UL << 44);
        Swap = new Option<string>("--swap")
        {
            Description = "With --host-mem: the swap device: 'file' (default: a new swap file in the temp folder, removed at exit), 'zram' (compressed in memory), or the path of a swap file to create or reuse (kept at exit).",
            HelpName = "PATH|file|zram",
        };
        SwapSize = CliOptions.Size(
            "--swap-size",
            null,
            "With --host-mem: size of the swap device, header page included (default: guest RAM, of every VM, plus the header, so every guest page fits; a smaller one can run the host out of memory, which stops the VM with status 3)",
            0,
            SwapOptions.MinSizeBytes,
            SwapOptions.MaxSlots * 4096);
        SwapIo = SwapIoOption("With --host-mem: how the swap file is read and written");
        Lru = LruOption("With --host-mem: the host's LRU policy");
        SecondaryAging = new Option<string>("--secondary-aging")
        {
            Description = "With --host-mem: whether the EPT's accessed bits (the notifier's young ops) count when the host ages guest pages: on (default, Linux since 2008) or off (the guest's use is invisible to the host).",
            HelpName = "on|off",
            DefaultValueFactory = _ => "on",
            CustomParser = result => SingleToken(result).ToLowerInvariant() switch
            {
                "on" => "on",
                "off" => "off",
                var text => Error(result, $"--secondary-aging expects on or off, got '{text}'", "on"),
            },
        };
        SecondaryAging.CompletionSources.Add("on", "off");
        InjectSwapErrors = new Option<double>("--inject-swap-errors")
        {
            Description = "With --host-mem: per page transfer, the probability of each injected swap fault (a read I/O error, a write I/O error, a bit flipped on write); a failed read stops the VM (memory failure, status 3), a failed write keeps the page resident. From 0 to below 1.",
            HelpName = "RATE",
            DefaultValueFactory = _ => 0,
            CustomParser = result =>
            {
                var text = SingleToken(result);
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) && rate >= 0 && rate < 1
                    ? rate
                    : Error(result, $"--inject-swap-errors expects a probability from 0 to below 1, got '{text}'", 0.0);
            },
        };
    }

    /// <summary><c>--host-mem</c>; 0 when absent.</summary>
    public Option<ByteSize> HostMem { get; }

    /// <summary><c>--swap</c>.</summary>
    public Option<string> Swap { get; }

    /// <summary><c>--swap-size</c>; 0 when absent (the default size).</summary>
    public Option<ByteSize> SwapSize { get; }

    /// <summary><c>--swap-io</c>: <c>buffered</c> or <c>direct</c>.</summary>
    public Option<string> SwapIo { get; }

    /// <summary>
    /// <c>--swap-io buffered|direct</c>, as <c>hv run</c> and <c>hv demo swap</c> take it: 'buffered' (the OS page cache
    /// beneath the swap file; the default) or 'direct' (O_DIRECT, as Linux's swap I/O); see <see cref="IsDirect"/>.
    /// </summary>
    /// <param name="what">The start of the description.</param>
    internal static Option<string> SwapIoOption(string what)
    {
        var option = new Option<string>("--swap-io")
        {
            Description = $"{what}: 'buffered' (through the OS page cache; default) or 'direct' (O_DIRECT, past the page cache, as Linux's swap I/O goes to the device, so swapped pages leave RAM; Linux only, not with zram).",
            HelpName = "buffered|direct",
            DefaultValueFactory = _ => "buffered",
            CustomParser = result => SingleToken(result).ToLowerInvariant() switch
            {
                "buffered" => "buffered",
                "direct" => "direct",
                var text => Error(result, $"--swap-io expects buffered or direct, got '{text}'", "buffered"),
            },
        };
        option.CompletionSources.Add("buffered", "direct");
        return option;
    }

    /// <summary>True when <paramref name="option"/> (a <see cref="SwapIoOption"/>) says direct.</summary>
    internal static bool IsDirect(ParseResult parseResult, Option<string> option) => parseResult.GetValue(option) == "direct";

    /// <summary>
    /// <c>--lru classic|mglru</c>, as <c>hv run</c> and <c>hv demo swap</c> take it: 'classic' (two lists,
    /// clear_flush_young; the default) or 'mglru' (the multi-gen LRU, clear_young).
    /// </summary>
    /// <param name="what">The start of the description, e.g. "The host's LRU policy".</param>
    internal static Option<LruPolicy> LruOption(string what)
    {
        var option = new Option<LruPolicy>("--lru")
        {
            Description = $"{what}: 'classic' (two lists, clear_flush_young; default) or 'mglru' (multi-gen LRU, clear_young).",
            HelpName = "classic|mglru",
            DefaultValueFactory = _ => LruPolicy.Classic,
            CustomParser = result => SingleToken(result).ToLowerInvariant() switch
            {
                "classic" => LruPolicy.Classic,
                "mglru" or "multigen" => LruPolicy.MultiGen,
                var text => Error(result, $"--lru expects classic or mglru, got '{text}'", LruPolicy.Classic),
            },
        };
        option.CompletionSources.Add("classic", "mglru");
        return option;
    }

    /// <summary><c>--lru</c>.</summary>
    public Option<LruPolicy> Lru { get; }

    /// <summary><c>--secondary-aging</c>: <c>on</c> or <c>off</c>.</summary>
    public Option<string> SecondaryAging { get; }

    /// <summary><c>--inject-swap-errors</c>.</summary>
    public Option<double> InjectSwapErrors { get; }

    /// <summary>Every option, in help order.</summary>
    public IEnumerable<Option> All => [HostMem, Swap, SwapSize, SwapIo, Lru, SecondaryAging, InjectSwapErrors];

    /// <summary>Creates the options.</summary>
    public static RunHostMemoryOptions Create() => new();

    /// <summary>
    /// Applies the parsed options to <paramref name="options"/> (whose guest RAM is set). Returns false with one line
    /// naming the option, the value and the rule when they do not go together or a size is out of range.
    /// </summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="options">The VM options so far.</param>
    /// <param name="vmCount">How many VMs share the host: the default swap holds all their RAM.</param>
    /// <param name="applied">The options with the host-memory settings.</param>
    /// <param name="error">The error line (without the <c>hv: error:</c> prefix).</param>
    public bool TryApply(ParseResult parseResult, VmOptions options, int vmCount, out VmOptions applied, out string? error)
    {
        applied = options;
        error = null;
        var hostBytes = parseResult.GetValue(HostMem).Bytes;
        if (hostBytes == 0)
        {
            var given = All.Skip(1).FirstOrDefault(o => parseResult.GetResult(o) is { Implicit: false });
            if (given is not null)
            {
                error = $"{given.Name} needs --host-mem: without a host memory limit nothing is reclaimed or swapped";
                return false;
            }

            return true;
        }

        var min = VmOptions.MinHostMemoryFor(options.MemoryBytes);
        var max = VmOptions.MaxHostMemoryBytes;
        if (hostBytes < min)
        {
            error = $"--host-mem {ByteSize.Format(hostBytes)} is below the minimum for {ByteSize.Format(options.MemoryBytes)} of guest RAM: {ByteSize.Format(min)} (the larger of 4M and 1/{VmOptions.MinHostMemoryFraction} of guest RAM)";
            return false;
        }

        if (hostBytes > max)
        {
            error = $"--host-mem {ByteSize.Format(hostBytes)} is larger than this machine's RAM ({ByteSize.Format(max)})";
            return false;
        }

        var device = parseResult.GetValue(Swap);
        var sizeBytes = parseResult.GetValue(SwapSize).Bytes;
        var swap = VmOptions.DefaultSwap(options.MemoryBytes * (ulong)Math.Max(1, vmCount));
        if (sizeBytes != 0)
        {
            swap = swap with { SizeBytes = sizeBytes };
        }

        var direct = IsDirect(parseResult, SwapIo);
        if (string.Equals(device, Zram, StringComparison.OrdinalIgnoreCase))
        {
            if (direct)
            {
                error = "--swap-io direct is for a swap file, not --swap zram (a compressed in-memory device has no page cache to bypass)";
                return false;
            }

            swap = swap with { Kind = SwapDeviceKind.Zram };
        }
        else if (device is { Length: > 0 } && !string.Equals(device, TempFile, StringComparison.OrdinalIgnoreCase))
        {
            swap = swap with { Path = device };
        }

        swap = swap with { DirectIo = direct };

        applied = options with
        {
            HostMemoryBytes = hostBytes,
            Swap = swap,
            LruPolicy = parseResult.GetValue(Lru),
            SecondaryAging = parseResult.GetValue(SecondaryAging) != "off",
            SwapErrorRate = parseResult.GetValue(InjectSwapErrors),
        };
        return true;
    }

    /// <summary>The one line for a VM option error raised while the swap device was built (<c>--swap</c>, <c>--swap-size</c>).</summary>
    /// <param name="exception">The error.</param>
    /// <param name="options">The options the VM was built from.</param>
    public static string Describe(VmOptionsException exception, VmOptions options) => exception.Rule switch
    {
        VmOptionRule.Swap => $"--swap {(options.Swap?.Kind == SwapDeviceKind.Zram ? Zram : options.Swap?.Path ?? TempFile)} --swap-size {ByteSize.Format(options.Swap?.SizeBytes ?? 0)}{(options.Swap?.DirectIo == true ? " --swap-io direct" : string.Empty)}: {WithoutParameter(exception)}",
        VmOptionRule.LruPolicy => $"--lru: {WithoutParameter(exception)}",
        _ => WithoutParameter(exception),
    };

    /// <summary>An exception's message without the "(Parameter 'x')" suffix that names a C# parameter, not user input.</summary>
    /// <param name="exception">The exception.</param>
    public static string WithoutParameter(Exception exception) =>
        exception is ArgumentException { ParamName: { } name } ? exception.Message.Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal) : exception.Message;

    private static string SingleToken(ArgumentResult result) => result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;

    private static T Error<T>(ArgumentResult result, string message, T fallback)
    {
        result.AddError(message);
        return fallback;
    }
}

using System.CommandLine;
using Hypervisor.Vmm.Devices.Dma;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv run --dma-cache safe|unsafe|off</c>: adds the DMA copy engine (<see cref="DmaEngine"/>) to the VM and says how it
/// caches host frames of the guest's buffers: <c>safe</c>, the registration cache on the user event channel;
/// <c>unsafe</c>, a cache that never listens (stale copies after swap-out, KSM, migration or munmap); <c>off</c>, no cache.
/// </summary>
internal static class DmaCacheOption
{
    /// <summary>The option's name.</summary>
    public const string OptionName = "--dma-cache";

    /// <summary>The names the option accepts, in help order.</summary>
    private static readonly string[] Names = ["safe", "unsafe", "off"];

    /// <summary>The mode of each name, in the same order.</summary>
    private static readonly DmaCacheMode[] Modes = [DmaCacheMode.Safe, DmaCacheMode.Unsafe, DmaCacheMode.Off];

    /// <summary>Creates the option; its value is null when it was not given (no DMA engine).</summary>
    public static Option<DmaCacheMode?> Create()
    {
        var option = new Option<DmaCacheMode?>(OptionName)
        {
            Description = "Emulated only: add the DMA copy engine at 0xFEB00000 (guests/dmatest.c drives it) and say how it caches host frames of guest buffers: "
                + "'safe' registers each buffer on the user event channel (ummunotify) and drops what it reports invalid; 'unsafe' caches without listening "
                + "(stale copies after swap-out, KSM merges, migration or munmap); 'off' resolves every page of every copy. The report gives its counters.",
            HelpName = string.Join('|', Names),
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
                if (TryParse(text, out var mode))
                {
                    return mode;
                }

                result.AddError($"{OptionName} expects safe, unsafe or off, got '{text}'");
                return null;
            },
        };
        option.CompletionSources.Add(Names);
        return option;
    }

    /// <summary>Parses <c>safe</c>, <c>unsafe</c> or <c>off</c> (any case).</summary>
    /// <param name="text">The option's value.</param>
    /// <param name="mode">The mode it names.</param>
    /// <returns>False for anything else.</returns>
    public static bool TryParse(string text, out DmaCacheMode mode)
    {
        for (var i = 0; i < Names.Length; i++)
        {
            if (string.Equals(text, Names[i], StringComparison.OrdinalIgnoreCase))
            {
                mode = Modes[i];
                return true;
            }
        }

        mode = DmaCacheMode.Off;
        return false;
    }

    /// <summary>The option's word for <paramref name="mode"/>.</summary>
    public static string Name(DmaCacheMode mode) => Names[Array.IndexOf(Modes, mode)];
}

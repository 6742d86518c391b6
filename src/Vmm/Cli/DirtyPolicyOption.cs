using System.CommandLine;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Accel;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv run --dirty-policy map|zap</c>: when the EPT MMU tells the host that the guest may have written a frame
/// (<see cref="DirtyTrackingPolicy"/>): <c>zap</c> (the default) hands each dirty spte's frame to the host when the
/// spte is zapped, <c>map</c> marks the frame dirty when a writable spte is installed (Linux 6.13 and later).
/// </summary>
internal static class DirtyPolicyOption
{
    /// <summary>The option's name.</summary>
    public const string Name = "--dirty-policy";

    /// <summary>The names the option accepts, in help order.</summary>
    private static readonly string[] Names = ["zap", "map"];

    /// <summary>Creates the option; its value is null when it was not given (the MMU's default, <c>zap</c>).</summary>
    public static Option<DirtyTrackingPolicy?> Create()
    {
        var option = new Option<DirtyTrackingPolicy?>(Name)
        {
            Description = "Emulated only: when the EPT MMU marks guest frames dirty in the host: 'zap' when a dirty spte is zapped "
                + "(default; KVM before Linux 6.13), 'map' when a writable spte is installed (Linux 6.13 on: zaps cost the same dirty or clean).",
            HelpName = string.Join('|', Names),
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
                if (TryParse(text, out var policy))
                {
                    return policy;
                }

                result.AddError($"{Name} expects map or zap, got '{text}'");
                return null;
            },
        };
        option.CompletionSources.Add(Names);
        return option;
    }

    /// <summary>Parses <c>map</c> or <c>zap</c> (any case).</summary>
    /// <param name="text">The option's value.</param>
    /// <param name="policy">The policy it names.</param>
    /// <returns>False for anything else.</returns>
    public static bool TryParse(string text, out DirtyTrackingPolicy policy)
    {
        if (string.Equals(text, "map", StringComparison.OrdinalIgnoreCase))
        {
            policy = DirtyTrackingPolicy.OnMap;
            return true;
        }

        policy = DirtyTrackingPolicy.OnZap;
        return string.Equals(text, "zap", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The error line's text when <paramref name="policy"/> was given for an accelerator without the EPT MMU, else null.
    /// KVM runs guest RAM outside the simulated host: its own MMU decides (Linux 6.13 and later: at map time).
    /// </summary>
    /// <param name="policy">The option's value (null: not given).</param>
    /// <param name="accelerator">The accelerator chosen.</param>
    public static string? Refusal(DirtyTrackingPolicy? policy, AcceleratorKind accelerator) =>
        policy is { } given && accelerator != AcceleratorKind.Emulated
            ? $"{Name} {Format(given)} needs --accel emulated: under --accel {accelerator.ToString().ToLowerInvariant()} the host kernel's KVM MMU decides when frames are marked dirty"
            : null;

    /// <summary>The option's word for <paramref name="policy"/>: <c>map</c> or <c>zap</c>.</summary>
    public static string Format(DirtyTrackingPolicy policy) => policy == DirtyTrackingPolicy.OnMap ? "map" : "zap";

    /// <summary>
    /// The report's "dirty policy" row: the policy's word, and how many frames each side marked dirty
    /// ("N marked on map / N propagated on zap").
    /// </summary>
    /// <param name="policy">The MMU's policy.</param>
    /// <param name="stats">The MMU's counters.</param>
    public static (string Value, string Description) ReportRow(DirtyTrackingPolicy policy, TdpMmuStats stats)
    {
        var c = CultureInfo.InvariantCulture;
        var side = policy == DirtyTrackingPolicy.OnMap
            ? "frames marked dirty when a writable spte was installed; zaps and aging report none"
            : "frames marked dirty when a dirty spte was zapped or aged";
        return (Format(policy), $"{stats.DirtyMarkedOnMap.ToString("N0", c)} marked on map / {stats.DirtyPropagated.ToString("N0", c)} propagated on zap ({side})");
    }
}

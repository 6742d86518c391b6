using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;

namespace Hypervisor.Vmm.Cli;

/// <summary>Prints <c>hv &lt;version&gt;</c>: the version of hv itself, whichever process hosts it.</summary>
internal sealed class VersionAction : SynchronousCommandLineAction
{
    /// <summary>The informational version of the hv assembly (e.g. <c>1.0.0+commit</c>).</summary>
    public static string Version { get; } =
        typeof(VersionAction).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(VersionAction).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    /// <inheritdoc />
    public override int Invoke(ParseResult parseResult)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        parseResult.InvocationConfiguration.Output.WriteLine($"hv {Version}");
        return ExitCodes.Success;
    }
}

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>A <see cref="MigrateDemoOptions"/> value breaks its rule.</summary>
/// <param name="option">The option's name.</param>
/// <param name="message">The rule and the value.</param>
public sealed class MigrateDemoOptionsException(string option, string message) : Exception(message)
{
    /// <summary>The name of the <see cref="MigrateDemoOptions"/> property whose value breaks its rule.</summary>
    public string Option { get; } = option;
}

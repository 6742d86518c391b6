namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>A <see cref="StressDemoOptions"/> value breaks its rule.</summary>
/// <param name="option">The option's name.</param>
/// <param name="message">The rule and the value.</param>
public sealed class StressDemoOptionsException(string option, string message) : Exception(message)
{
    /// <summary>The name of the <see cref="StressDemoOptions"/> property whose value breaks its rule.</summary>
    public string Option { get; } = option;
}

namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>A <see cref="KsmDemoOptions"/> value breaks its rule.</summary>
/// <param name="option">The option's name.</param>
/// <param name="message">The rule and the value.</param>
public sealed class KsmDemoOptionsException(string option, string message) : Exception(message)
{
    /// <summary>The name of the <see cref="KsmDemoOptions"/> property whose value breaks its rule.</summary>
    public string Option { get; } = option;
}

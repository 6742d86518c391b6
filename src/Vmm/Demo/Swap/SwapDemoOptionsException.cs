namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>A <see cref="SwapDemoOptions"/> value breaks its rule.</summary>
/// <param name="option">The option's name.</param>
/// <param name="message">The rule and the value.</param>
public sealed class SwapDemoOptionsException(string option, string message) : Exception(message)
{
    /// <summary>The name of the <see cref="SwapDemoOptions"/> property whose value breaks its rule.</summary>
    public string Option { get; } = option;
}

namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>A <see cref="DmaDemoOptions"/> value breaks its rule.</summary>
/// <param name="option">The option's name.</param>
/// <param name="message">The rule and the value.</param>
public sealed class DmaDemoOptionsException(string option, string message) : Exception(message)
{
    /// <summary>The name of the <see cref="DmaDemoOptions"/> property whose value breaks its rule.</summary>
    public string Option { get; } = option;
}

namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>A <see cref="ThpDemoOptions"/> value breaks its rule; the message names the value and the rule.</summary>
/// <param name="parameter">The option's property name.</param>
/// <param name="message">The value and the rule.</param>
public sealed class ThpDemoOptionsException(string parameter, string message) : ArgumentException(message, parameter);

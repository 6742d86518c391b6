namespace Hypervisor.HostMm.Frames;

/// <summary>A <see cref="HostMemoryOptions"/> value broke a rule (size, node count, divisibility).</summary>
public sealed class InvalidHostMemoryOptionsException : ArgumentException
{
    /// <summary>Creates the exception with a message that names the value and the rule.</summary>
    public InvalidHostMemoryOptionsException(string message, string paramName)
        : base(message, paramName)
    {
    }
}

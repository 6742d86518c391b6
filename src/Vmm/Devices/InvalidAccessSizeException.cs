namespace Hypervisor.Vmm.Devices;

/// <summary>A port access was not 1, 2 or 4 bytes wide, or an MMIO access was empty.</summary>
/// <remarks>Not an <see cref="Hypervisor.Notifier.IInputError"/>: access sizes come from the interpreter's decoder or from
/// kvm_run, never from a user, so reaching this is a bug in <c>hv</c> and the command line reports it as an internal error.</remarks>
public sealed class InvalidAccessSizeException : ArgumentOutOfRangeException
{
    /// <summary>Creates the exception for the offending size and the rule it broke.</summary>
    /// <param name="size">The size requested.</param>
    /// <param name="rule">The rule, e.g. "port accesses are 1, 2 or 4 bytes".</param>
    /// <param name="paramName">The argument being checked.</param>
    public InvalidAccessSizeException(int size, string rule, string? paramName = null)
        : base(paramName, size, $"access size {size} is invalid: {rule}")
    {
        Size = size;
    }

    /// <summary>The size requested.</summary>
    public int Size { get; }
}

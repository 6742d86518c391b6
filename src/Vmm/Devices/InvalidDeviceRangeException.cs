namespace Hypervisor.Vmm.Devices;

/// <summary>A device was registered at an empty range, or one that runs past the end of its address space.</summary>
public sealed class InvalidDeviceRangeException : ArgumentException
{
    /// <summary>Creates the exception with a message naming the device, the range and the rule.</summary>
    /// <param name="message">The full message.</param>
    /// <param name="paramName">The argument being checked.</param>
    public InvalidDeviceRangeException(string message, string? paramName = null)
        : base(message, paramName)
    {
    }
}

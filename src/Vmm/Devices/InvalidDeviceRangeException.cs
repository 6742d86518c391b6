namespace Hypervisor.Vmm.Devices;

/// <summary>A device was registered at an empty range, or one that runs past the end of its address space.</summary>
/// <remarks>Not an <see cref="Hypervisor.Notifier.IInputError"/>: the device layout is fixed by <see cref="PcDevices"/>, so
/// reaching this is a bug in <c>hv</c> and the command line reports it as an internal error.</remarks>
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

namespace Hypervisor.Vmm.Devices;

/// <summary>A device was registered over ports or guest-physical addresses another device already owns.</summary>
/// <remarks>Not an <see cref="Hypervisor.Notifier.IInputError"/>: the device layout is fixed by <see cref="PcDevices"/>, so
/// reaching this is a bug in <c>hv</c> and the command line reports it as an internal error.</remarks>
public sealed class OverlappingDeviceException : ArgumentException
{
    /// <summary>Creates the exception naming both devices and both ranges.</summary>
    /// <param name="space">"port" or "MMIO".</param>
    /// <param name="device">The device being registered.</param>
    /// <param name="range">Its requested range, formatted.</param>
    /// <param name="existing">The device already there.</param>
    /// <param name="existingRange">The existing device's range, formatted.</param>
    public OverlappingDeviceException(string space, string device, string range, string existing, string existingRange)
        : base($"{space} range {range} of device '{device}' overlaps {space} range {existingRange} of device '{existing}': devices must not share addresses")
    {
        Device = device;
        ExistingDevice = existing;
    }

    /// <summary>The device being registered.</summary>
    public string Device { get; }

    /// <summary>The device that already owns part of the range.</summary>
    public string ExistingDevice { get; }
}

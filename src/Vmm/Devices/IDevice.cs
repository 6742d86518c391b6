namespace Hypervisor.Vmm.Devices;

/// <summary>A device that can sit on the <see cref="DeviceBus"/>; its name appears in errors, logs and counters.</summary>
public interface IDevice
{
    /// <summary>A short, stable name such as <c>uart16550</c>, used in error messages and counter listings.</summary>
    string Name { get; }
}

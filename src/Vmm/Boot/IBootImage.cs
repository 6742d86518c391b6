namespace Hypervisor.Vmm.Boot;

/// <summary>A validated guest image that <see cref="Machine.Vm.Boot"/> can place in guest RAM: an <see cref="ElfImage"/> or a <see cref="BzImage"/>.</summary>
public interface IBootImage
{
    /// <summary>Writes the image into <paramref name="memory"/>; nothing is written unless it fits.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <returns>What was written and the image's entry points.</returns>
    /// <exception cref="BootImageException">The image does not fit in guest RAM.</exception>
    LoadedImage Load(IGuestPhysicalMemory memory);
}

using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>One boot-fuzz input: an image file and the request that boots it.</summary>
/// <param name="Kind">How the file was made ("elf", "bzImage", "mutated elf", "bytes"), for the outcome histogram.</param>
/// <param name="File">The image file.</param>
/// <param name="RamSize">Bytes of guest RAM.</param>
/// <param name="Protocol">The protocol asked for.</param>
/// <param name="CommandLine">The kernel command line.</param>
/// <param name="InitrdSize">Bytes of the initrd, 0 for none.</param>
/// <param name="Acpi">True to write the ACPI tables too.</param>
internal sealed record BootFuzzCase(string Kind, byte[] File, ulong RamSize, BootProtocol Protocol, string CommandLine, int InitrdSize, bool Acpi)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Kind}, RAM 0x{RamSize:x}, {Protocol}, command line of {CommandLine.Length} chars, initrd {InitrdSize} bytes, ACPI {Acpi}, file of {File.Length} bytes: {Convert.ToBase64String(File)}";
}

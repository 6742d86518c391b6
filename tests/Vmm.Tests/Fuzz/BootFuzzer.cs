using Hypervisor.Vmm.Acpi;
using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// The boot-fuzz property: parse, load and boot-protocol setup of any file either succeed — with the image inside RAM,
/// the boot data clear of it and the entry inside it — or throw <see cref="BootImageException"/>, the loader's own
/// error. Any other exception (IndexOutOfRange, Overflow, ArgumentOutOfRange, a plain ArgumentException …) escapes as
/// a failure.
/// </summary>
internal static class BootFuzzer
{
    private static readonly AcpiTables Tables = new AcpiTableBuilder(1).Build();

    /// <summary>Boots <paramref name="input"/>; returns its outcome: the protocol booted or the rule broken.</summary>
    public static string Run(BootFuzzCase input)
    {
        ArgumentNullException.ThrowIfNull(input);
        try
        {
            var image = BootImage.Parse(input.File);
            var memory = new CheckedGuestMemory(input.RamSize);
            var loaded = image.Load(memory);
            memory.Protect(loaded);
            var initrd = input.InitrdSize > 0 ? InitialRamDisk.FromBytes("fuzz initrd", new byte[input.InitrdSize]) : null;
            var state = GuestBoot.Setup(memory, loaded, input.Protocol, input.CommandLine, input.Acpi ? Tables : null, initrd);
            var protocol = GuestBoot.Resolve(loaded, input.Protocol);
            if (protocol != BootProtocol.LongMode && !loaded.Segments.Any(s => s.ContainsPhysical(state.Rip)))
            {
                throw new GuestMemoryViolationException($"{protocol} entry 0x{state.Rip:x} lies outside the loaded image ({string.Join(", ", loaded.Segments)})");
            }

            return $"{input.Kind}: booted {protocol}";
        }
        catch (BootImageException e)
        {
            return $"{input.Kind}: {e.Rule}";
        }
    }
}

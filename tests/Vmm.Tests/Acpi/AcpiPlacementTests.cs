using System.Buffers.Binary;
using System.Text;
using Hypervisor.Vmm.Acpi;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Boot;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Acpi;

/// <summary>
/// Where the tables land: in the BIOS area the memory map leaves out of RAM, found by Linux's legacy RSDP scan
/// (16-byte steps over 0xE0000–0xFFFFF, signature and 20-byte checksum), and named in hvm_start_info.rsdp_paddr
/// (offset 32) by the protocols that pass a start info.
/// </summary>
public sealed class AcpiPlacementTests
{
    private const ulong Ram = 16 << 20;

    private static LoadedImage Load(ElfBuilder builder, FakeGuestMemory memory) => ImageLoader.Load(ElfImage.Parse(builder.Build()), memory);

    private static ElfBuilder Elf64WithPvh() =>
        ElfBuilder.Elf64(0x100010, ElfSegmentSpec.Load(0x100000, ElfBuilder.Pattern(0x40)), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0x100000)));

    private static ElfBuilder Multiboot32() => ElfBuilder.Elf32(0x100000, ElfSegmentSpec.Load(0x100000, [.. ElfBuilder.MultibootHeader(0), 0xF4]));

    /// <summary>The legacy scan of the BIOS area as Linux (acpi_find_root_pointer) does it: the first 16-byte-aligned RSDP whose 20-byte checksum holds.</summary>
    private static ulong? ScanForRsdp(IGuestPhysicalMemory memory)
    {
        var area = new byte[0x20000];
        memory.Read(0xE0000, area);
        for (var offset = 0; offset + 20 <= area.Length; offset += 16)
        {
            if (Encoding.ASCII.GetString(area, offset, 8) == "RSD PTR " && area.AsSpan(offset, 20).ToArray().Sum(b => b) % 256 == 0)
            {
                return 0xE0000 + (ulong)offset;
            }
        }

        return null;
    }

    private static byte[] Read(IGuestPhysicalMemory memory, ulong gpa, int length)
    {
        var bytes = new byte[length];
        memory.Read(gpa, bytes);
        return bytes;
    }

    [TestCase(BootProtocol.Pvh)]
    [TestCase(BootProtocol.LongMode)]
    [TestCase(BootProtocol.Multiboot)]
    public void EveryProtocolWritesTheTablesWhereTheLegacyScanFindsThem(BootProtocol protocol)
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(protocol == BootProtocol.Multiboot ? Multiboot32() : Elf64WithPvh(), memory);
        var acpi = new AcpiTableBuilder(2).Build();

        GuestBoot.Setup(memory, image, protocol, "", acpi);

        Assert.Multiple(() =>
        {
            Assert.That(ScanForRsdp(memory), Is.EqualTo(acpi.RsdpAddress));
            Assert.That(memory.Bytes(acpi.BaseAddress, acpi.Image.Length), Is.EqualTo(acpi.Image.ToArray()));
            Assert.That(GuestMemoryMap.Build(Ram).Where(e => e.Type == E820Type.Ram).Any(e => e.Address < acpi.EndAddress && acpi.BaseAddress < e.Address + e.Size),
                Is.False, "no RAM entry of the memory map covers the tables");
        });
    }

    [Test]
    public void PvhStartInfoCarriesTheRsdp()
    {
        var memory = new FakeGuestMemory(Ram);
        var acpi = new AcpiTableBuilder(1).Build();

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.Pvh, "", acpi);

        var startInfo = memory.Bytes(state.Rbx, 56);
        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(startInfo), Is.EqualTo(PvhBoot.StartInfoMagic));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(startInfo.AsSpan(4)), Is.EqualTo(1), "version 1");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(startInfo.AsSpan(32)), Is.EqualTo(acpi.RsdpAddress), "rsdp_paddr");
        });
    }

    [Test]
    public void LongModeStartInfoCarriesTheRsdp()
    {
        var memory = new FakeGuestMemory(Ram);
        var acpi = new AcpiTableBuilder(1).Build();

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.LongMode, "", acpi);

        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(memory.Bytes(state.Rdi + 32, 8)), Is.EqualTo(acpi.RsdpAddress));
    }

    [Test]
    public void WithoutTablesRsdpPaddrIsZeroAndTheBiosAreaUntouched()
    {
        var memory = new FakeGuestMemory(Ram);

        var state = GuestBoot.Setup(memory, Load(Elf64WithPvh(), memory), BootProtocol.Pvh, "");

        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(memory.Bytes(state.Rbx + 32, 8)), Is.Zero);
            Assert.That(memory.Bytes(0xE0000, 0x20000), Is.All.EqualTo(0xCC));
        });
    }

    [Test]
    public void AnImageOverTheTablesIsRefused()
    {
        var memory = new FakeGuestMemory(Ram);
        var image = Load(ElfBuilder.Elf64(0xE0000, ElfSegmentSpec.Load(0xE0000, ElfBuilder.Pattern(0x100)), ElfSegmentSpec.Note(ElfBuilder.PvhNote(0xE0000))), memory);

        var error = Assert.Throws<BootImageException>(() => GuestBoot.Setup(memory, image, BootProtocol.Pvh, "", new AcpiTableBuilder(1).Build()))!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(BootImageRule.OverlapsBootData));
            Assert.That(error.Message, Does.Contain("ACPI tables"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void AVmWritesTablesForItsVcpuCount()
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("hello")));
        using var vm = new Vm(new VmOptions { CpuCount = 3, Timeout = TimeSpan.FromSeconds(60) }, new GuestConsole());

        vm.Boot(image);

        var rsdp = ScanForRsdp(vm.Ram);
        Assert.That(rsdp, Is.Not.Null);
        var xsdt = BinaryPrimitives.ReadUInt64LittleEndian(Read(vm.Ram, rsdp!.Value + 24, 8));
        var madt = Enumerable.Range(0, 2).Select(i => BinaryPrimitives.ReadUInt64LittleEndian(Read(vm.Ram, xsdt + 36 + (ulong)(8 * i), 8)))
            .Single(t => Encoding.ASCII.GetString(Read(vm.Ram, t, 4)) == "APIC");
        var length = BinaryPrimitives.ReadInt32LittleEndian(Read(vm.Ram, madt + 4, 4));
        var bytes = Read(vm.Ram, madt, length);
        var localApics = 0;
        for (var at = 44; at < length; at += bytes[at + 1])
        {
            localApics += bytes[at] == 0 ? 1 : 0;
        }

        Assert.That(localApics, Is.EqualTo(3));
        Assert.That(vm.Accelerator.Kind, Is.EqualTo(AcceleratorKind.Emulated));
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void OnTheInterpreterThePmTimerCountsTheBootVcpusVirtualTime()
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("hello")));
        using var vm = new Vm(new VmOptions { Timeout = TimeSpan.FromSeconds(60) }, new GuestConsole());
        vm.Boot(image);

        vm.Run();

        var cpu = vm.Emulated!.Cpus[0].Cpu;
        Assert.That(cpu.VirtualNanoseconds, Is.GreaterThan(0));
        Assert.That(vm.Bus.ReadPort(AcpiPlatform.PmTimerPort, 4), Is.EqualTo(AcpiPmTimer.TicksAt(cpu.VirtualNanoseconds)));
    }
}

using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>The sample guests (guests/build/*.elf) boot on real KVM through the same <see cref="Vm"/>, loader, boot protocol and devices as the interpreter.</summary>
[Category(TestCategories.Kvm)]
[Category(TestCategories.Guest)]
public sealed class KvmGuestImageTests
{
    private const ulong RamBytes = 128 << 20;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [SetUp]
    public void RequireKvm() => KvmTestGuest.RequireKvm();

    [TestCase("", "Hello from the guest\n")]
    [TestCase("console=uart", "Hello from the guest\r\n")]
    public void HelloPrintsItsGreetingAndExitsWithStatusOne(string commandLine, string line)
    {
        var (result, output) = Boot("hello", commandLine);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result + "\n" + output);
            Assert.That(result.ExitStatus, Is.EqualTo(1), result.ToString());
            Assert.That(output, Does.Contain(line));
        });
    }

    [Test]
    public void SieveCountsThePrimesBelowOneHundred()
    {
        var (result, output) = Boot("sieve", "n=100");

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result + "\n" + output);
            Assert.That(result.ExitStatus, Is.EqualTo(1), result.ToString());
            Assert.That(output, Does.Contain("sieve: 25 primes below 100"));
        });
    }

    [Test]
    public void HelloBootsThroughTheDirectLongModeEntry()
    {
        var (result, output) = Boot("hello", string.Empty, BootProtocol.LongMode);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result + "\n" + output);
            Assert.That(result.ExitStatus, Is.EqualTo(1), result.ToString());
            Assert.That(output, Does.Contain("Hello from the guest\n"));
        });
    }

    private static (VmRunResult Result, string Output) Boot(string guest, string commandLine, BootProtocol protocol = BootProtocol.Auto)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath(guest)));
        var console = new GuestConsole();
        using var vm = new Vm(
            new VmOptions { Accelerator = AcceleratorKind.Kvm, MemoryBytes = RamBytes, CommandLine = commandLine, Protocol = protocol, Timeout = Limit },
            console);
        vm.Boot(image);

        var result = vm.Run();
        var output = console.Transcript();
        TestContext.Out.WriteLine($"{guest} \"{commandLine}\" ({protocol}) on KVM: {result.Kind}: {result.Detail}");
        if (result.Kind is not (VmStopKind.GuestExit or VmStopKind.Timeout))
        {
            Assert.Inconclusive($"KVM could not run {guest}: {result.Kind}: {result.Detail}; output so far: {output}");
        }

        return (result, output);
    }
}

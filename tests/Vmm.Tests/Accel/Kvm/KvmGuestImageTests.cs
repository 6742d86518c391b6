using System.Diagnostics;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>The sample guests (guests/build/*.elf) boot on real KVM through the same loader, boot protocol and devices as the interpreter.</summary>
public sealed class KvmGuestImageTests
{
    private const ulong RamBytes = 128 << 20;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private static readonly object BuildLock = new();
    private static string? _buildFailure;
    private static bool _buildTried;

    [SetUp]
    public void RequireKvm() => KvmTestGuest.RequireKvm();

    [TestCase("", "Hello from the guest\n")]
    [TestCase("console=uart", "Hello from the guest\r\n")]
    public void HelloPrintsItsGreetingAndExitsWithStatusOne(string commandLine, string line)
    {
        var (result, output) = Boot("hello", commandLine);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(KvmStopKind.DeviceStop), result + "\n" + output);
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
            Assert.That(result.Kind, Is.EqualTo(KvmStopKind.DeviceStop), result + "\n" + output);
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
            Assert.That(result.Kind, Is.EqualTo(KvmStopKind.DeviceStop), result + "\n" + output);
            Assert.That(result.ExitStatus, Is.EqualTo(1), result.ToString());
            Assert.That(output, Does.Contain("Hello from the guest\n"));
        });
    }

    private static (KvmRunResult Result, string Output) Boot(string guest, string commandLine, BootProtocol protocol = BootProtocol.Auto)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(ImagePath(guest)));
        using var machine = new KvmMachine(RamBytes);
        var bus = new DeviceBus();
        var console = new GuestConsole();
        var stop = new VmStopSignal();
        PcDevices.Attach(bus, console, stop, 1, RamBytes);
        var loaded = ImageLoader.Load(image, machine.Memory);
        machine.SetInitialState(GuestBoot.Setup(machine.Memory, loaded, protocol, commandLine));

        var result = machine.Run(bus, stop, Limit);
        var output = console.Transcript();
        TestContext.Out.WriteLine($"{guest} \"{commandLine}\" ({protocol}) on KVM: {result}");
        if (result.Kind is not (KvmStopKind.DeviceStop or KvmStopKind.Timeout))
        {
            Assert.Inconclusive($"KVM could not run {guest}: {result}; output so far: {output}");
        }

        return (result, output);
    }

    private static string ImagePath(string guest)
    {
        var root = RepositoryRoot();
        var path = Path.Combine(root, "guests", "build", guest + ".elf");
        if (File.Exists(path))
        {
            return path;
        }

        lock (BuildLock)
        {
            if (!_buildTried)
            {
                _buildTried = true;
                _buildFailure = BuildGuests(Path.Combine(root, "guests"));
            }
        }

        if (_buildFailure is not null)
        {
            Assert.Ignore(_buildFailure);
        }

        if (!File.Exists(path))
        {
            Assert.Ignore($"make -C guests did not produce {path}");
        }

        return path;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Hypervisor.sln")))
            {
                return dir.FullName;
            }
        }

        Assert.Ignore($"no Hypervisor.sln above {TestContext.CurrentContext.TestDirectory}: the guest images cannot be found");
        return string.Empty;
    }

    // Returns null on success, else the reason the images cannot be built.
    private static string? BuildGuests(string guestsDirectory)
    {
        foreach (var tool in new[] { "make", "gcc" })
        {
            if (!OnPath(tool))
            {
                return $"'{tool}' is not on PATH: the sample guests cannot be built (apt-get install make gcc)";
            }
        }

        var start = new ProcessStartInfo("make", ["-C", guestsDirectory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var make = Process.Start(start)!;
        var stdout = make.StandardOutput.ReadToEndAsync();
        var stderr = make.StandardError.ReadToEnd();
        make.WaitForExit();
        _ = stdout.Result;
        return make.ExitCode == 0 ? null : $"make -C {guestsDirectory} failed with exit code {make.ExitCode}: {stderr.Trim()}";
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, tool)));
}

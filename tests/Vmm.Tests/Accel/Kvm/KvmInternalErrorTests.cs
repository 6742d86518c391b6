using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>
/// KVM_EXIT_INTERNAL_ERROR on the real /dev/kvm: an access KVM must emulate (guest-physical memory outside every memslot)
/// with an instruction its emulator does not implement stops the run with suberror 1, at the instruction, before any
/// device sees the access; <c>hv run --accel kvm</c> reports it with the registers and exits 3.
/// </summary>
[Category(TestCategories.Kvm)]
public sealed class KvmInternalErrorTests
{
    private string _directory = string.Empty;

    [SetUp]
    public void RequireKvmAndCreateDirectory()
    {
        KvmTestGuest.RequireKvm();
        _directory = Path.Combine(Path.GetTempPath(), "hv-kvm-internal-error-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory()
    {
        if (_directory.Length > 0 && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Test]
    public void AnX87LoadFromMmioIsAnEmulationFailure()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.fld(__dword_ptr[0xFEE00030u]);
            a.hlt();
        });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError), result.ToString());
            Assert.That(result.Cause, Is.EqualTo("InternalError"));
            Assert.That(result.Detail, Does.StartWith("KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed)"));
            Assert.That(result.Detail, Does.Match(@"\(instruction emulation failed\)(, data( 0x[0-9a-f]+)+)?$"));
            Assert.That(result.Registers?.Rip, Is.EqualTo(KvmTestGuest.CodeAddress), "the vCPU stays at the instruction KVM could not emulate");
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Broken));
            Assert.That(result.BootVcpu.Counters.Mmio, Is.Zero, "the access never reached user space as MMIO");
            Assert.That(guest.Bus.CountersOf(guest.Devices.LocalApic).MmioReads, Is.Zero);
        });
    }

    [Test]
    public void FetchingCodeFromOutsideRamIsAnEmulationFailure()
    {
        const uint outsideRam = 0x8000_0000;
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(eax, outsideRam);
            a.jmp(eax);
        });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError), result.ToString());
            Assert.That(result.Detail, Does.StartWith("KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed)"));
            Assert.That(result.Registers?.Rip, Is.EqualTo((ulong)outsideRam));
        });
    }

    [Test]
    public void HvRunReportsTheInternalErrorWithTheRegistersAndExitsThree()
    {
        // 512 MiB: inside the boot page tables' identity map (1 GiB), outside the default 128 MiB of RAM.
        const uint outsideRam = 0x2000_0000;
        var image = Path.Combine(_directory, "x87-mmio.elf");
        File.WriteAllBytes(image, TestImages.Code64(a =>
        {
            a.mov(rbx, TestImages.RaxMarker);
            a.mov(eax, outsideRam);
            a.fld(__dword_ptr[rax]);
            a.hlt();
        }));

        var result = Hv.Run("run", "--accel", "kvm", "--timeout", "60", image);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(3), result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run x87-mmio.elf --accel kvm: the VM could not continue (InternalError), exit status 3"));
            Assert.That(result.Stdout, Does.Contain("KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed)"));
            Assert.That(result.Stdout, Does.Contain($"RBX={TestImages.RaxMarker:x16}"), "the registers follow the detail");
            Assert.That(result.Stdout, Does.Contain($"RAX={outsideRam:x16}"));

            // mov rbx, imm64 (10 bytes) and mov eax, imm32 (5 bytes) precede the fld.
            Assert.That(result.Stdout, Does.Contain($"RIP={TestImages.CodeAddress + 15:x16}"));
            Assert.That(result.Stdout, Does.Match(@"last RIP\s+0x10000f"));
        });
    }
}

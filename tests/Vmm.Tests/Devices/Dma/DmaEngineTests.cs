using System.Buffers.Binary;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Devices.Dma;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Devices.Dma;

/// <summary>
/// The DMA engine's register interface on a VM's bus: ID and mode, source/destination/length written whole or in
/// 32-bit halves, the doorbell starting a copy on the engine's thread (status Busy, then Done and the completed count),
/// and the refusals (length 0, beyond 1 MiB, outside guest RAM) as status BadRange.
/// </summary>
public sealed class DmaEngineTests
{
    private const ulong Base = DmaEngine.BaseAddress;

    [Test]
    public void IdAndModeRegistersNameTheEngineAndItsCache()
    {
        using var vm = NewVm(DmaCacheMode.Unsafe);

        Assert.Multiple(() =>
        {
            Assert.That(Read64(vm, DmaEngine.IdRegister), Is.EqualTo(DmaEngine.Magic));
            Assert.That(Read64(vm, DmaEngine.ModeRegister), Is.EqualTo((ulong)DmaCacheMode.Unsafe));
            Assert.That(Read64(vm, DmaEngine.StatusRegister), Is.EqualTo((ulong)DmaStatus.Idle));
            Assert.That(vm.Bus.IsMmio(Base), Is.True);
            Assert.That(vm.Dma!.Name, Is.EqualTo("dma"));
        });
    }

    [Test]
    public void TheDoorbellCopiesGuestPhysicalBuffersAndSetsTheStatus()
    {
        using var vm = NewVm(DmaCacheMode.Safe);
        var data = Enumerable.Range(0, 10000).Select(i => (byte)(i * 7)).ToArray();
        vm.Ram.Write(0x100123, data);

        Write64(vm, DmaEngine.SourceRegister, 0x100123);
        Write32(vm, DmaEngine.DestinationRegister, 0x00300456);
        Write32(vm, DmaEngine.DestinationRegister + 4, 0);
        Write64(vm, DmaEngine.LengthRegister, (ulong)data.Length);
        var status = Ring(vm);

        var copied = new byte[data.Length];
        vm.Ram.Read(0x300456, copied);
        Assert.Multiple(() =>
        {
            Assert.That(copied, Is.EqualTo(data));
            Assert.That(status, Is.EqualTo((ulong)DmaStatus.Done));
            Assert.That(Read64(vm, DmaEngine.CompletedRegister), Is.EqualTo(1UL));
            Assert.That(Read64(vm, DmaEngine.SourceRegister), Is.EqualTo(0x100123UL));
            Assert.That(Read64(vm, DmaEngine.DestinationRegister), Is.EqualTo(0x300456UL));
            Assert.That(Read64(vm, DmaEngine.DoorbellRegister), Is.Zero, "the doorbell reads 0");
            Assert.That(vm.Dma!.Counters.Copies, Is.EqualTo(1));
            Assert.That(vm.Dma.Counters.Bytes, Is.EqualTo(data.Length));
        });
    }

    [Test]
    public void WaitIdleReturnsOnceTheCopyTheDoorbellStartedHasLanded()
    {
        using var vm = NewVm(DmaCacheMode.Safe);
        var data = Enumerable.Range(0, (int)DmaEngine.MaxLength).Select(i => (byte)(i * 13)).ToArray();
        vm.Ram.Write(0x100000, data);
        Assert.That(vm.Dma!.WaitIdle(TimeSpan.Zero), Is.True, "idle before any doorbell");

        Write64(vm, DmaEngine.SourceRegister, 0x100000);
        Write64(vm, DmaEngine.DestinationRegister, 0x400000);
        Write64(vm, DmaEngine.LengthRegister, (ulong)data.Length);
        Write64(vm, DmaEngine.DoorbellRegister, 1);
        var idle = vm.Dma.WaitIdle(TimeSpan.FromSeconds(10));

        // Read before anything else can finish the copy: WaitIdle must not have returned while it was in flight.
        var status = Read64(vm, DmaEngine.StatusRegister);
        var copies = vm.Dma.Counters.Copies;
        var copied = new byte[data.Length];
        vm.Ram.Read(0x400000, copied);
        Assert.Multiple(() =>
        {
            Assert.That(idle, Is.True);
            Assert.That(status, Is.EqualTo((ulong)DmaStatus.Done));
            Assert.That(copies, Is.EqualTo(1));
            Assert.That(copied, Is.EqualTo(data));
        });
    }

    [TestCase(0x1000UL, 0x2000UL, 0UL, TestName = "LengthZeroIsRefused")]
    [TestCase(0x1000UL, 0x200000UL, (1UL << 20) + 1, TestName = "LengthAboveOneMibIsRefused")]
    [TestCase(0x1000UL, (16UL << 20) - 0x800, 0x1000UL, TestName = "ADestinationRunningPastRamIsRefused")]
    [TestCase(0xFEB00000UL, 0x2000UL, 0x10UL, TestName = "ASourceOutsideRamIsRefused")]
    public void BadCopiesSetStatusBadRangeAndCopyNothing(ulong source, ulong destination, ulong length)
    {
        using var vm = NewVm(DmaCacheMode.Safe);
        Write64(vm, DmaEngine.SourceRegister, source);
        Write64(vm, DmaEngine.DestinationRegister, destination);
        Write64(vm, DmaEngine.LengthRegister, length);
        var status = Ring(vm);

        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo((ulong)DmaStatus.BadRange));
            Assert.That(Read64(vm, DmaEngine.CompletedRegister), Is.Zero);
            Assert.That(vm.Dma!.Counters.Failures, Is.EqualTo(1));
            Assert.That(vm.Dma.Counters.Copies, Is.Zero);
        });
    }

    [Test]
    public void ReadOnlyRegistersIgnoreWritesAndOddAccessesReadZero()
    {
        using var vm = NewVm(DmaCacheMode.Off);
        Write64(vm, DmaEngine.IdRegister, 5);
        Write64(vm, DmaEngine.StatusRegister, 5);
        var odd = new byte[2];
        vm.Bus.ReadMmio(Base + DmaEngine.IdRegister, odd);

        Assert.Multiple(() =>
        {
            Assert.That(Read64(vm, DmaEngine.IdRegister), Is.EqualTo(DmaEngine.Magic));
            Assert.That(Read64(vm, DmaEngine.StatusRegister), Is.EqualTo((ulong)DmaStatus.Idle));
            Assert.That(odd, Is.EqualTo(new byte[2]), "a 2-byte access is not a register access");
        });
    }

    [Test]
    public void AVmWithoutTheOptionHasNoEngineAndKvmRefusesIt()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20 }, new GuestConsole());

        Assert.Multiple(() =>
        {
            Assert.That(vm.Dma, Is.Null);
            Assert.That(vm.Bus.IsMmio(Base), Is.False);
            var error = Assert.Throws<VmOptionsException>(() => new VmOptions { Accelerator = Hypervisor.Vmm.Accel.AcceleratorKind.Kvm, DmaCache = DmaCacheMode.Safe }.Validate())!;
            Assert.That(error.Message, Does.Contain("DmaCache").And.Contain("emulated"));
        });
    }

    /// <summary>Rings the doorbell and polls the status, as a guest does, until the engine's thread is done.</summary>
    private static ulong Ring(Vm vm)
    {
        Write64(vm, DmaEngine.DoorbellRegister, 1);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        ulong status;
        while ((status = Read64(vm, DmaEngine.StatusRegister)) == (ulong)DmaStatus.Busy && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(1);
        }

        return status;
    }

    private static Vm NewVm(DmaCacheMode mode) => new(new VmOptions { MemoryBytes = 16UL << 20, DmaCache = mode }, new GuestConsole());

    private static ulong Read64(Vm vm, ulong register)
    {
        Span<byte> bytes = stackalloc byte[8];
        vm.Bus.ReadMmio(Base + register, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private static void Write64(Vm vm, ulong register, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        vm.Bus.WriteMmio(Base + register, bytes);
    }

    private static void Write32(Vm vm, ulong register, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        vm.Bus.WriteMmio(Base + register, bytes);
    }
}

using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>
/// A machine on real KVM with the standard devices and a tiny guest assembled with Iced at 1 MiB, entered in flat
/// 32-bit protected mode with paging off (the PVH GDT at 0x500, as <see cref="PvhBoot"/> builds it).
/// </summary>
internal sealed class KvmTestGuest : IDisposable
{
    public const ulong CodeAddress = 0x10_0000;
    public const ulong StackTop = 0x9_0000;
    public const ulong RamBytes = 4 << 20;

    private KvmTestGuest(KvmMachine machine)
    {
        Machine = machine;
        Bus = new DeviceBus();
        Console = new GuestConsole();
        Stop = new VmStopSignal();
        Devices = PcDevices.Attach(Bus, Console, Stop, 1, machine.MemorySize);
    }

    public KvmMachine Machine { get; }

    public DeviceBus Bus { get; }

    public GuestConsole Console { get; }

    public VmStopSignal Stop { get; }

    public PcDevices Devices { get; }

    /// <summary>Ignores the calling test when this machine cannot run KVM guests.</summary>
    public static void RequireKvm()
    {
        if (!KvmAvailability.IsAvailable(out var why))
        {
            Assert.Ignore("KVM is not available here: " + why);
        }
    }

    /// <summary>Assembles <paramref name="emit"/> as 32-bit code and loads it with the flat protected-mode state.</summary>
    /// <param name="emit">Emits the guest's instructions.</param>
    /// <param name="adjust">Changes the initial state (e.g. an empty IDT), or null.</param>
    public static KvmTestGuest Create32(Action<Assembler> emit, Func<InitialCpuState, InitialCpuState>? adjust = null)
    {
        var assembler = new Assembler(32);
        emit(assembler);
        using var code = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(code), CodeAddress);

        var machine = new KvmMachine(RamBytes);
        try
        {
            var gdt = PvhBoot.Gdt();
            machine.Memory.Write(PvhBoot.GdtAddress, BootMemory.ToBytes(gdt));
            machine.Memory.Write(CodeAddress, code.ToArray());
            var state = BootMemory.Flat32(CodeAddress, PvhBoot.GdtAddress, gdt) with { Rsp = StackTop };
            machine.SetInitialState(adjust is null ? state : adjust(state));
            return new KvmTestGuest(machine);
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>Runs the guest with a time limit.</summary>
    public KvmRunResult Run(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Machine.Run(Bus, Stop, timeout, cancellationToken);

    public void Dispose() => Machine.Dispose();
}

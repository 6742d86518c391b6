using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>
/// A <see cref="Vm"/> on the kvm accelerator with the standard devices and a tiny guest assembled with Iced at 1 MiB,
/// entered in flat 32-bit protected mode with paging off (the PVH GDT at 0x500, as <see cref="PvhBoot"/> builds it).
/// </summary>
internal sealed class KvmTestGuest : IDisposable
{
    public const ulong CodeAddress = 0x10_0000;
    public const ulong StackTop = 0x9_0000;
    public const ulong RamBytes = 4 << 20;

    /// <summary>The run's time limit unless a test gives its own.</summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(60);

    private KvmTestGuest(Vm vm)
    {
        Vm = vm;
    }

    public Vm Vm { get; }

    public KvmMachine Machine => ((KvmAccelerator)Vm.Accelerator).Machine;

    public DeviceBus Bus => Vm.Bus;

    public GuestConsole Console => Vm.Console;

    public VmStopSignal Stop => Vm.Stop;

    public PcDevices Devices => Vm.Devices;

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
    /// <param name="limit">The VM's timeout; <see cref="DefaultLimit"/> when null.</param>
    public static KvmTestGuest Create32(Action<Assembler> emit, Func<InitialCpuState, InitialCpuState>? adjust = null, TimeSpan? limit = null)
    {
        var assembler = new Assembler(32);
        emit(assembler);
        using var code = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(code), CodeAddress);

        var vm = new Vm(new VmOptions { Accelerator = AcceleratorKind.Kvm, MemoryBytes = RamBytes, Timeout = limit ?? DefaultLimit }, new GuestConsole());
        try
        {
            var gdt = PvhBoot.Gdt();
            vm.Ram.Write(PvhBoot.GdtAddress, BootMemory.ToBytes(gdt));
            vm.Ram.Write(CodeAddress, code.ToArray());
            var state = BootMemory.Flat32(CodeAddress, PvhBoot.GdtAddress, gdt) with { Rsp = StackTop };
            vm.Accelerator.Vcpus[0].SetInitialState(adjust is null ? state : adjust(state));
            return new KvmTestGuest(vm);
        }
        catch
        {
            vm.Dispose();
            throw;
        }
    }

    /// <summary>Runs the guest until it stops, its time limit, or <paramref name="cancellationToken"/>.</summary>
    public VmRunResult Run(CancellationToken cancellationToken = default) => Vm.Run(cancellationToken);

    public void Dispose() => Vm.Dispose();
}

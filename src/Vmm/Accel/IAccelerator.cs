using Hypervisor.Vmm.Boot;

namespace Hypervisor.Vmm.Accel;

/// <summary>
/// What runs a VM's vCPUs: the interpreter (<see cref="Emulated.EmulatedAccelerator"/>) or /dev/kvm
/// (<see cref="Kvm.KvmAccelerator"/>). The <see cref="Machine.Vm"/> owns the devices and does the boot for both, and
/// turns the vCPUs' exits into one <see cref="Machine.VmRunResult"/>, so the two can be compared run for run.
/// </summary>
/// <remarks>
/// <para>vCPUs: one <see cref="IVcpu"/> per vCPU id, created with the accelerator. Each runs on its own host thread
/// (<see cref="IVcpu.Run"/> blocks the calling thread); the VM runs the boot vCPU on its caller's thread. Application
/// processors are created too but wait for INIT–SIPI, which the device set does not deliver yet, so they never run.</para>
/// <para>Lifetime: disposed by the VM after every vCPU has returned from <see cref="IVcpu.Run"/>.</para>
/// </remarks>
public interface IAccelerator : IDisposable
{
    /// <summary>Which accelerator this is.</summary>
    AcceleratorKind Kind { get; }

    /// <summary>Guest RAM as the boot loader writes it (gpa 0 up), the memory the vCPUs run on.</summary>
    IGuestPhysicalMemory Memory { get; }

    /// <summary>The vCPUs, index = vCPU id (0 is the boot vCPU).</summary>
    IReadOnlyList<IVcpu> Vcpus { get; }
}

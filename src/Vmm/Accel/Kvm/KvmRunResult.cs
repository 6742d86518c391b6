namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>The outcome of one <see cref="KvmMachine.Run"/>.</summary>
/// <param name="Kind">Why the run stopped.</param>
/// <param name="Detail">One line on the stop: the device request, the exit reason and its codes, or the limit that elapsed.</param>
/// <param name="ExitStatus">The stop request's exit status for <see cref="KvmStopKind.DeviceStop"/>; 0 otherwise.</param>
/// <param name="Rip">The guest RIP when the run stopped (KVM_GET_REGS).</param>
/// <param name="Exits">KVM_RUN calls that returned an exit to user space (interrupted calls not counted).</param>
/// <param name="PortIoExits">Exits for port I/O (KVM_EXIT_IO).</param>
/// <param name="MmioExits">Exits for MMIO (KVM_EXIT_MMIO).</param>
/// <param name="Elapsed">Wall-clock time the run took.</param>
public sealed record KvmRunResult(
    KvmStopKind Kind,
    string Detail,
    int ExitStatus,
    ulong Rip,
    long Exits,
    long PortIoExits,
    long MmioExits,
    TimeSpan Elapsed)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Kind}: {Detail} (exit status {ExitStatus}, rip 0x{Rip:x}, {Exits} exits: {PortIoExits} port I/O, {MmioExits} MMIO, {Elapsed.TotalMilliseconds:F1} ms)";
}

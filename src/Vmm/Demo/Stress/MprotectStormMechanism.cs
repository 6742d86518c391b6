using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// Storms of mprotect: a vCPU's whole region made read-only in the host for a few milliseconds, then read-write again. A guest write into the window cannot be mapped writable (the EPT follows the host PTE), so the vCPU exits to
/// the VMM with a memory fault (<see cref="Accel.Emulated.EmulatedVcpu.MemoryFaultHandler"/>); <see cref="Resolve"/>
/// waits for the window to close, or, when it stays closed too long, restores write permission on the page itself, and
/// the vCPU runs the write again — as KVM's mmu_stress_test does with KVM_EXIT_MEMORY_FAULT.
/// </summary>
internal sealed class MprotectStormMechanism(StressContext context) : StressMechanism
{
    /// <summary>The longest a vCPU waits for a window to close before the VMM restores the page itself.</summary>
    public static readonly TimeSpan WaitCap = TimeSpan.FromMilliseconds(3);

    /// <summary>Memory-fault exits in a row that no window explains before the handler gives up (a bug, not a storm).</summary>
    private const int MaxUnexplained = 10_000;

    [ThreadStatic]
    private static int t_unexplained;

    private readonly ManualResetEventSlim _open = new(initialState: true);
    private readonly Lock _windowLock = new();
    private (ulong Start, ulong End)? _window;
    private long _exits;
    private long _waited;
    private long _restored;
    private long _closedBefore;

    public override StressMechanismKind Kind => StressMechanismKind.MprotectStorm;

    public override string Name => "mprotect storms";

    public override string OperationName => "read-only windows";

    public override string EffectName => "memory-fault exits resolved";

    public override long Effect => Interlocked.Read(ref _exits);

    public override string Detail => string.Create(
        CultureInfo.InvariantCulture,
        $"{Interlocked.Read(ref _waited):N0} waited for the window to close, {Interlocked.Read(ref _restored):N0} restored by the VMM, {Interlocked.Read(ref _closedBefore):N0} closed before the VMM looked");

    /// <summary>
    /// The VMM's answer to a memory-fault exit, on the vCPU's thread (outside its slice gate): true when the vCPU may run
    /// the access again. A write inside the open window waits for it to close (at most <see cref="WaitCap"/>), then
    /// restores write permission on the faulting page itself; a fault no window explains is retried (the window closed
    /// between the exit and this look) up to a bound.
    /// </summary>
    public bool Resolve(MemoryFault fault, CancellationToken stop)
    {
        if (fault.Access != EptAccess.Write)
        {
            return false;
        }

        bool inWindow;
        lock (_windowLock)
        {
            inWindow = _window is { } window && fault.Gpa.Value >= window.Start && fault.Gpa.Value < window.End;
        }

        if (!inWindow)
        {
            Interlocked.Increment(ref _closedBefore);
            Interlocked.Increment(ref _exits);
            return ++t_unexplained < MaxUnexplained && !stop.IsCancellationRequested;
        }

        t_unexplained = 0;
        Interlocked.Increment(ref _exits);
        if (_open.Wait(WaitCap, stop))
        {
            Interlocked.Increment(ref _waited);
            return true;
        }

        var page = fault.Gpa.Value & ~(Paging.PageSize - 1);
        context.Gate.Shared(() => context.Process.Mprotect(context.Memory.HvaOf(page), Paging.PageSize, Protection.Read | Protection.Write));
        Interlocked.Increment(ref _restored);
        return true;
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop)
    {
        var (start, length) = Range(operation);
        lock (_windowLock)
        {
            _window = (start, start + length);
            _open.Reset();
        }

        context.Memory.ForEachHostRange(start, length, (hva, bytes) => context.Process.Mprotect(hva, bytes, Protection.Read));
    }

    protected override void EndHold(in StressOperation operation)
    {
        var (start, length) = Range(operation);
        context.Memory.ForEachHostRange(start, length, (hva, bytes) => context.Process.Mprotect(hva, bytes, Protection.Read | Protection.Write));
        lock (_windowLock)
        {
            _window = null;
            _open.Set();
        }
    }

    private (ulong Start, ulong Length) Range(in StressOperation operation) =>
        (context.Memory.Layout.ChunkGpa(operation.Chunk) + ((ulong)operation.Page * Paging.PageSize), (ulong)operation.Pages * Paging.PageSize);
}

namespace Hypervisor.GuestMmu.Tlb;

/// <summary>
/// One vCPU's end of the TLB-shootdown protocol (KVM's request word plus <c>vcpu->mode</c>). The vCPU
/// thread calls <see cref="EnterGuest"/> before running guest code, <see cref="ServiceRequests"/> at every
/// instruction-block boundary, and <see cref="ExitGuest"/> when it stops; flushers post requests through
/// <see cref="TlbShootdown"/>.
/// </summary>
/// <remarks>
/// Ordering (Dekker): a flusher numbers its request and then reads the mode; the vCPU sets the mode and
/// then reads the request number, both with full fences. The vCPU reads the number before it flushes and
/// publishes it as served afterwards, so a served number always belongs to a flush that began after that
/// request was posted. So either the flusher sees the vCPU in guest mode and
/// waits for its acknowledgement, or the vCPU sees the request before it runs guest code. Invariant: once
/// <see cref="TlbShootdown.FlushAll"/> returns, no vCPU holds a translation made before it was called.
/// </remarks>
public sealed class VcpuTlbPort
{
    private readonly Action _flushLocalTlb;
    private long _requested;
    private long _served;
    private int _mode;

    /// <summary>Creates the port of vCPU <paramref name="vcpuId"/>; <paramref name="flushLocalTlb"/> empties its TLB (runs on the vCPU thread).</summary>
    public VcpuTlbPort(int vcpuId, Action flushLocalTlb)
    {
        ArgumentNullException.ThrowIfNull(flushLocalTlb);
        VcpuId = vcpuId;
        _flushLocalTlb = flushLocalTlb;
    }

    /// <summary>The vCPU's id.</summary>
    public int VcpuId { get; }

    /// <summary>The vCPU's current mode.</summary>
    public VcpuMode Mode => (VcpuMode)Volatile.Read(ref _mode);

    /// <summary>Flush requests posted to this vCPU so far.</summary>
    public long Requested => Volatile.Read(ref _requested);

    /// <summary>The highest request number this vCPU has flushed for.</summary>
    public long Served => Volatile.Read(ref _served);

    /// <summary>True while a flush request waits for this vCPU.</summary>
    public bool HasPendingFlush => Requested != Served;

    /// <summary>vCPU thread: about to run guest code. Services any request posted while it was outside.</summary>
    public void EnterGuest()
    {
        Interlocked.Exchange(ref _mode, (int)VcpuMode.InGuest);
        ServiceRequests();
    }

    /// <summary>vCPU thread: stopped running guest code (exit to the VMM, halt). The thread must call
    /// <see cref="ServiceRequests"/> before it uses the TLB outside the guest (for example to emulate MMIO).</summary>
    public void ExitGuest()
    {
        ServiceRequests();
        Interlocked.Exchange(ref _mode, (int)VcpuMode.OutsideGuest);
    }

    /// <summary>vCPU thread, at an instruction-block boundary: performs a requested flush and acknowledges it.</summary>
    /// <returns>True when a flush was performed.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool ServiceRequests() => Volatile.Read(ref _requested) != Volatile.Read(ref _served) && ServiceSlow();

    /// <summary>Flusher side: posts a flush request; returns its number to wait for, or -1 when the vCPU is outside the guest.</summary>
    internal long Post()
    {
        var ticket = Interlocked.Increment(ref _requested);
        return Volatile.Read(ref _mode) == (int)VcpuMode.InGuest ? ticket : -1;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool ServiceSlow()
    {
        // Every request numbered up to 'seen' was posted before this read, so the flush below covers it.
        var seen = Interlocked.Read(ref _requested);
        if (seen == Volatile.Read(ref _served))
        {
            return false;
        }

        _flushLocalTlb();
        Volatile.Write(ref _served, seen);
        return true;
    }
}

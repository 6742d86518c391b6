using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;

namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// One vCPU's memory view: its paging registers, <see cref="SoftTlb"/>, <see cref="TwoDimensionalWalker"/> and the
/// <see cref="VcpuTlbPort"/> (registered with the VM's <see cref="TlbShootdown"/>; its flush callback empties the
/// TLB). Reads, writes and fetches go through the TLB and walk on a miss; faults come back as results, never as
/// exceptions. Owned by the vCPU thread.
/// </summary>
/// <remarks>
/// Coherence: the vCPU calls <see cref="VcpuTlbPort.EnterGuest"/> before using guest memory and
/// <see cref="VcpuTlbPort.ServiceRequests"/> at instruction-block boundaries; once a shootdown has returned, its
/// flush has been applied here before the next access. Control-register changes go through
/// <see cref="SetContext"/>, which applies x86's flush rules.
/// </remarks>
public sealed unsafe class MmuContext : IDisposable // unsafe: accesses copy through host pointers from the TLB.
{
    private readonly TdpMmu _mmu;
    private PagingContext _context;

    /// <summary>Creates vCPU <paramref name="vcpuId"/>'s view of <paramref name="mmu"/> and registers its port for shootdowns.</summary>
    public MmuContext(TdpMmu mmu, int vcpuId, in PagingContext context = default)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        _mmu = mmu;
        Tlb = new SoftTlb();
        Port = new VcpuTlbPort(vcpuId, Tlb.FlushAll);
        Walker = new TwoDimensionalWalker(mmu, Port);
        _context = context;
        Tlb.AccessClass = SoftTlb.ClassOf(context);
        mmu.Shootdown.Add(Port);
    }

    /// <summary>The vCPU's TLB.</summary>
    public SoftTlb Tlb { get; }

    /// <summary>The vCPU's shootdown port.</summary>
    public VcpuTlbPort Port { get; }

    /// <summary>The vCPU's page walker.</summary>
    public TwoDimensionalWalker Walker { get; }

    /// <summary>The paging registers in force.</summary>
    public PagingContext Context => _context;

    /// <summary>
    /// Pages whose writes are reported before they happen (null: none). Setting it does not drop write entries
    /// already cached: call <see cref="SoftTlb.FlushAll"/> when a page starts being watched.
    /// </summary>
    public IWriteMonitor? WriteMonitor { get; set; }

    /// <summary>
    /// Loads new paging registers with x86's TLB rules: a change of CR0.PG/WP, CR4.PAE/PGE/LA57/SMEP/SMAP or
    /// EFER.LMA/NXE flushes everything; otherwise a changed CR3 flushes the non-global entries; CPL and
    /// RFLAGS.AC only select the access class.
    /// </summary>
    public void SetContext(in PagingContext next)
    {
        if (next.TranslationControlBits != _context.TranslationControlBits)
        {
            Tlb.FlushAll();
        }
        else if (next.Cr3 != _context.Cr3)
        {
            Tlb.FlushNonGlobal();
        }

        _context = next;
        Tlb.AccessClass = SoftTlb.ClassOf(next);
    }

    /// <summary>A MOV to CR3: flushes non-global entries (even when the value is unchanged, as hardware does without PCIDs).</summary>
    public void WriteCr3(ulong cr3)
    {
        _context = _context with { Cr3 = cr3 };
        Tlb.FlushNonGlobal();
    }

    /// <summary>
    /// Empties this vCPU's TLB and every other vCPU's of the VM before returning: the code-page watcher calls it when a
    /// page starts holding decoded code, so that no vCPU keeps a writable translation that would let its stores to the
    /// page go unseen. With one vCPU it is a local flush. From the vCPU's own thread in guest mode it leaves guest mode
    /// for the shootdown (a flusher must not wait for itself) and re-enters, which serves its own request.
    /// </summary>
    public void FlushEveryVcpu()
    {
        if (_mmu.Shootdown.Ports.Count <= 1)
        {
            Tlb.FlushAll();
            return;
        }

        var inGuest = Port.Mode == VcpuMode.InGuest;
        if (inGuest)
        {
            Port.ExitGuest();
        }

        try
        {
            _mmu.Shootdown.FlushAll();
        }
        finally
        {
            if (inGuest)
            {
                Port.EnterGuest();
            }
            else
            {
                Port.ServiceRequests();
            }
        }
    }

    /// <summary>INVLPG <paramref name="gva"/>.</summary>
    public void Invlpg(Gva gva) => Tlb.FlushPage(gva);

    /// <summary>
    /// The host address of <paramref name="gva"/> for <paramref name="access"/>: a TLB hit, or a walk that fills
    /// the TLB. On failure <paramref name="host"/> is null and <paramref name="failure"/> says why.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslate(Gva gva, GuestAccess access, out byte* host, out TranslationResult failure)
    {
        if (Tlb.TryLookup(gva, access, out host))
        {
            failure = default;
            return true;
        }

        return TranslateSlow(gva, access, out host, out failure);
    }

    /// <summary>
    /// The host address and guest-physical address of the instruction byte at <paramref name="gva"/>: a TLB
    /// hit, or a walk that fills the TLB. On failure <paramref name="host"/> is null and <paramref name="failure"/> says why.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslateFetch(Gva gva, out byte* host, out Gpa gpa, out TranslationResult failure)
    {
        if (Tlb.TryLookupFetch(gva, out host, out gpa))
        {
            failure = default;
            return true;
        }

        return TranslateSlow(gva, GuestAccess.Execute, out host, out failure, out gpa);
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="gva"/>.</summary>
    public AccessResult Read(Gva gva, Span<byte> destination) 
    {
        fixed (byte* buffer = destination)
        {
            return Access(gva, GuestAccess.Read, destination.Length, buffer, toGuest: false);
        }
    }

    /// <summary>Fetches <paramref name="destination"/>.Length instruction bytes at <paramref name="gva"/>.</summary>
    public AccessResult Fetch(Gva gva, Span<byte> destination) 
    {
        fixed (byte* buffer = destination)
        {
            return Access(gva, GuestAccess.Execute, destination.Length, buffer, toGuest: false);
        }
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="gva"/>: every page is checked before any byte is written.</summary>
    public AccessResult Write(Gva gva, ReadOnlySpan<byte> source) 
    {
        fixed (byte* buffer = source)
        {
            return Access(gva, GuestAccess.Write, source.Length, buffer, toGuest: true);
        }
    }

    /// <summary>Reads with an explicit access kind (e.g. <see cref="GuestAccess.ImplicitSupervisor"/> for descriptor tables).</summary>
    public AccessResult Read(Gva gva, Span<byte> destination, GuestAccess access) 
    {
        fixed (byte* buffer = destination)
        {
            return Access(gva, access, destination.Length, buffer, toGuest: false);
        }
    }

    /// <summary>Writes with an explicit access kind (e.g. <see cref="GuestAccess.ImplicitSupervisor"/> | Write for a TSS busy bit).</summary>
    public AccessResult Write(Gva gva, ReadOnlySpan<byte> source, GuestAccess access) 
    {
        fixed (byte* buffer = source)
        {
            return Access(gva, access | GuestAccess.Write, source.Length, buffer, toGuest: true);
        }
    }

    /// <summary>Unregisters the port from the VM's shootdowns.</summary>
    public void Dispose() => _mmu.Shootdown.Remove(Port);

    // The caller pinned the buffer (fixed) for the whole access.
    private AccessResult Access(Gva gva, GuestAccess access, int length, byte* buffer, bool toGuest)
    {
        // Pass 1: every page must be accessible before any byte moves (an instruction's access is all or nothing);
        // an MMIO page ends the RAM part.
        var limit = length;
        for (var offset = 0; offset < length;)
        {
            var at = gva + (ulong)offset;
            var chunk = (int)Math.Min((ulong)(length - offset), Paging.PageSize - at.PageOffset);
            if (!TryTranslate(at, access, out _, out var failure))
            {
                if (failure.Status != TranslationStatus.EptMmio)
                {
                    return new AccessResult(failure.Status, 0, failure);
                }

                limit = offset;
                break;
            }

            offset += chunk;
        }

        // Pass 2: copy (the entries normally still hit; a re-walk that now fails reports how far it got).
        for (var offset = 0; offset < limit;)
        {
            var at = gva + (ulong)offset;
            var chunk = (int)Math.Min((ulong)(limit - offset), Paging.PageSize - at.PageOffset);
            if (!TryTranslate(at, access, out var host, out var failure))
            {
                return new AccessResult(failure.Status, offset, failure);
            }

            if (toGuest)
            {
                Buffer.MemoryCopy(buffer + offset, host, chunk, chunk);
            }
            else
            {
                Buffer.MemoryCopy(host, buffer + offset, chunk, chunk);
            }

            offset += chunk;
        }

        if (limit < length)
        {
            TryTranslate(gva + (ulong)limit, access, out _, out var mmio);
            return new AccessResult(TranslationStatus.EptMmio, limit, mmio);
        }

        return new AccessResult(TranslationStatus.Ok, length, default);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TranslateSlow(Gva gva, GuestAccess access, out byte* host, out TranslationResult failure) =>
        TranslateSlow(gva, access, out host, out failure, out _);

    // The walk on a miss: fills the TLB (never with a write entry for a watched page) and answers from the walk.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TranslateSlow(Gva gva, GuestAccess access, out byte* host, out TranslationResult failure, out Gpa gpa)
    {
        var result = Walker.Translate(_context, gva, access);
        if (!result.IsOk)
        {
            host = null;
            gpa = default;
            failure = result;
            return false;
        }

        var monitor = WriteMonitor;
        if (monitor is not null && (result.Permissions & PagePermissions.Write) != 0 && monitor.IsWatched(result.Gpa.Gfn))
        {
            if ((access & GuestAccess.Write) != 0)
            {
                monitor.OnWatchedWrite(result.Gpa);
            }

            result = result with { Permissions = result.Permissions & ~PagePermissions.Write };
        }

        Tlb.Fill(result, access);
        host = result.Host;
        gpa = result.Gpa;
        failure = default;
        return true;
    }
}

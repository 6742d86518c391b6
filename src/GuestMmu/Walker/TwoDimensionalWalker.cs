using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;

namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The "hardware" page walker of one vCPU: guest-virtual → guest-physical through the guest's own page tables,
/// where every guest page-table read is itself translated through EPT (a two-dimensional walk), then the final
/// gpa through EPT to a host pointer. Sets guest A bits on every level used and D on the leaf for writes (by
/// compare-exchange on the guest entry in host memory, as hardware does), EPT A and D through
/// <see cref="EptPageTable.TrySetAccessedDirty"/>, and checks U/S, R/W with CR0.WP, NX, SMEP and SMAP with the
/// exact #PF error code. EPT violations are resolved through <see cref="TdpMmu.HandleEptViolation"/> and the
/// walk retried. Not thread-safe: one walker per vCPU, used on the vCPU's thread.
/// </summary>
/// <remarks>
/// <para>Model: paging off, 32-bit paging (4 KiB, and 4 MiB with CR4.PSE and PSE-36), PAE paging and 4-level long
/// mode; 5-level paging is reported as unsupported. MAXPHYADDR is 48 (bits 48–51 of an entry are reserved), 1 GiB pages are supported, protection
/// keys and PCIDs are not. Upper-level A bits are set as the walk uses each entry (even if the access then
/// faults, as Intel's paging-structure caches do); the leaf's A and D are set only when the access is allowed.</para>
/// <para>Lock order and guest mode: the walk itself takes no lock and reads sptes lock-free. Resolving an EPT
/// violation and setting an EPT dirty bit (which <see cref="HardwareAdPolicy.DirtyUnderMmuLock"/> requires under
/// the MMU lock) are VM exits: when a <see cref="VcpuTlbPort"/> is given and the vCPU is in guest mode, the walker
/// leaves guest mode around them (so a shootdown never waits for a vCPU blocked on the MMU lock) and enters it
/// again afterwards. Invariant: a host pointer is only used while no flush request was serviced since the spte
/// it came from was read — when the port reports a serviced flush during a walk, the whole walk restarts.</para>
/// </remarks>
public sealed unsafe class TwoDimensionalWalker // unsafe: guest page-table entries are read and compare-exchanged in host memory by pointer.
{
    private const ulong PresentBit = 1UL << 0;
    private const ulong WritableBit = 1UL << 1;
    private const ulong UserBit = 1UL << 2;
    private const ulong AccessedBit = 1UL << 5;
    private const ulong DirtyBit = 1UL << 6;
    private const ulong PageSizeBit = 1UL << 7;
    private const ulong GlobalBit = 1UL << 8;
    private const ulong NoExecuteBit = 1UL << 63;
    private const ulong AddressMask = 0x0000_FFFF_FFFF_F000UL;
    private const ulong HighReservedMask = 0x000F_0000_0000_0000UL;
    private const ulong Pdpte1GReservedMask = 0x3FFF_E000UL;
    private const ulong Pde2MReservedMask = 0x001F_E000UL;

    // PAE: bits 62:48 of a PDE or PTE are reserved (MAXPHYADDR 48; long mode leaves 62:52 to software), and a
    // PDPTE has no permission bits: 2:1 and 8:5 are reserved, and so is 63 (it has no XD bit).
    private const ulong PaeHighReservedMask = 0x7FFF_0000_0000_0000UL;
    private const ulong PdpteReservedMask = 0xFFFF_0000_0000_01E6UL;
    private const ulong Legacy32AddressMask = 0xFFFF_F000UL;
    private const ulong Pde4MAddressMask = 0xFFC0_0000UL;
    private const ulong Pde4MReservedBit = 1UL << 21;
    private const ulong PdptAddressMask = 0xFFFF_FFE0UL;
    private const int MaxAttempts = 1000;

    private readonly TdpMmu _mmu;
    private readonly EptPageTable _ept;
    private readonly VcpuTlbPort? _port;

    // The memslot of the last frame reached, to find its backing without a lookup; a hint only (see FrameAddress).
    private Memslot? _lastSlot;

    // Counters: written by the owning vCPU thread only; read by anyone (torn-free 64-bit reads).
    private long _walks;
    private long _eptViolations;
    private long _pageFaults;
    private long _mmio;
    private long _errors;
    private long _restarts;
    private long _guestAdUpdates;
    private long _eptAdUpdates;

    /// <summary>Creates the walker of one vCPU over <paramref name="mmu"/>.</summary>
    /// <param name="mmu">The VM's guest MMU.</param>
    /// <param name="port">The vCPU's shootdown port, if it runs in guest mode (see remarks); null for a walker used outside any vCPU.</param>
    public TwoDimensionalWalker(TdpMmu mmu, VcpuTlbPort? port = null)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        _mmu = mmu;
        _ept = mmu.Ept;
        _port = port;
    }

    /// <summary>The guest MMU the walker resolves EPT violations through.</summary>
    public TdpMmu Mmu => _mmu;

    /// <summary>
    /// What the host said about the last <see cref="WalkError.HostOutOfMemory"/> or <see cref="WalkError.MemoryFailure"/>
    /// (the gpa, the host address, and for a memory failure the swap slot and the device's answer); null before any.
    /// </summary>
    public string? LastFailureDetail { get; private set; }

    /// <summary>
    /// The access of the last <see cref="WalkError.HostFault"/>: the gpa the host mapping refused and how it was accessed
    /// (what a memory-fault exit reports to the VMM); null before any.
    /// </summary>
    public MemoryFault? LastMemoryFault { get; private set; }

    /// <summary>A snapshot of the counters.</summary>
    public WalkerStats Stats => new()
    {
        Walks = Volatile.Read(ref _walks),
        EptViolations = Volatile.Read(ref _eptViolations),
        GuestPageFaults = Volatile.Read(ref _pageFaults),
        EptMmio = Volatile.Read(ref _mmio),
        Errors = Volatile.Read(ref _errors),
        Restarts = Volatile.Read(ref _restarts),
        GuestAdUpdates = Volatile.Read(ref _guestAdUpdates),
        EptAdUpdates = Volatile.Read(ref _eptAdUpdates),
    };

    private enum Step
    {
        Ok,
        Mmio,
        HostFault,
        OutOfMemory,
        MemoryFailure,
        Released,
        RetryLimit,
        Restart,
    }

    /// <summary>Translates <paramref name="gva"/> for <paramref name="access"/> under <paramref name="ctx"/>.</summary>
    /// <returns>The translation, a guest #PF, a non-canonical address, an MMIO gpa or a VM error (including
    /// <see cref="WalkError.UnsupportedPagingMode"/> for 5-level paging); never throws for guest-caused conditions.</returns>
    public TranslationResult Translate(in PagingContext ctx, Gva gva, GuestAccess access)
    {
        _walks++;
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var served = _port?.Served ?? 0;
            var result = TranslateOnce(ctx, gva, access, out var restart);
            if (!restart && (_port is null || _port.Served == served))
            {
                return Count(result);
            }

            _restarts++;
        }

        return Count(TranslationResult.Failure(gva, default, WalkError.RetryLimit));
    }

    private TranslationResult Count(in TranslationResult result)
    {
        switch (result.Status)
        {
            case TranslationStatus.PageFault:
                _pageFaults++;
                break;
            case TranslationStatus.EptMmio:
                _mmio++;
                break;
            case TranslationStatus.Error:
                _errors++;
                break;
        }

        return result;
    }

    private TranslationResult TranslateOnce(in PagingContext ctx, Gva gva, GuestAccess access, out bool restart)
    {
        restart = false;
        switch (ctx.Mode)
        {
            case PagingMode.None:
                // Paging off: linear addresses are 32 bits and map 1:1; no guest permission applies.
                return Finish(gva, new Gpa(gva.Value & 0xFFFF_FFFFUL), access, Paging.PageSize,
                    PagePermissions.Read | PagePermissions.Write | PagePermissions.Execute, global: false, out restart);
            case PagingMode.LongMode4Level:
                return gva.IsCanonical48
                    ? WalkLongMode(ctx, gva, access, out restart)
                    : new TranslationResult { Status = TranslationStatus.NonCanonical, Gva = gva };
            case PagingMode.Legacy32:
                return WalkLegacy(ctx, gva, access, pae: false, out restart);
            case PagingMode.Pae:
                return WalkLegacy(ctx, gva, access, pae: true, out restart);
            default:
                // Not a guest fault: the machine cannot continue (the interpreter reports the mode from its CRs).
                return TranslationResult.Failure(gva, default, WalkError.UnsupportedPagingMode);
        }
    }

    private TranslationResult WalkLongMode(in PagingContext ctx, Gva gva, GuestAccess access, out bool restart)
    {
        restart = false;
        var kind = access & (GuestAccess.Write | GuestAccess.Execute);
        var implicitSupervisor = (access & GuestAccess.ImplicitSupervisor) != 0;
        var write = kind == GuestAccess.Write;
        var fetch = kind == GuestAccess.Execute;
        var userAccess = ctx.Cpl == 3 && !implicitSupervisor;
        var nxe = ctx.NoExecuteEnabled;

        var baseCode = (write ? PageFaultErrorCode.Write : 0)
            | (userAccess ? PageFaultErrorCode.User : 0)
            | (fetch && (nxe || ctx.Smep) ? PageFaultErrorCode.InstructionFetch : 0);
        var reservedAlways = HighReservedMask | (nxe ? 0 : NoExecuteBit);

        var user = true;
        var writable = true;
        var noExecute = false;
        var tableGpa = ctx.Cr3 & AddressMask;
        ulong entry;
        Gpa entryGpa;
        int level;
        for (level = 4; ; level--)
        {
            var shift = Paging.PageShift + (9 * (level - 1));
            entryGpa = new Gpa(tableGpa + (((gva.Value >> shift) & 511) * sizeof(ulong)));
            var step = ResolveEpt(entryGpa, EptAccess.Read, out var pointer, out _);
            if (step != Step.Ok)
            {
                return StepFailure(step, gva, entryGpa, out restart);
            }

            entry = Volatile.Read(ref *(ulong*)pointer);
            if ((entry & PresentBit) == 0)
            {
                return TranslationResult.PageFault(gva, baseCode);
            }

            var reserved = reservedAlways | level switch
            {
                4 => PageSizeBit,
                3 => (entry & PageSizeBit) != 0 ? Pdpte1GReservedMask : 0,
                2 => (entry & PageSizeBit) != 0 ? Pde2MReservedMask : 0,
                _ => 0,
            };
            if ((entry & reserved) != 0)
            {
                return TranslationResult.PageFault(gva, baseCode | PageFaultErrorCode.Present | PageFaultErrorCode.Reserved);
            }

            user &= (entry & UserBit) != 0;
            writable &= (entry & WritableBit) != 0;
            noExecute |= nxe && (entry & NoExecuteBit) != 0;
            if (level == 1 || (entry & PageSizeBit) != 0)
            {
                break;
            }

            // The entry is used for the translation: hardware sets its A bit now.
            step = SetGuestBits(entryGpa, entry, AccessedBit, narrow: false);
            if (step != Step.Ok)
            {
                return StepFailure(step, gva, entryGpa, out restart);
            }

            tableGpa = entry & AddressMask;
        }

        var pageSize = 1UL << (Paging.PageShift + (9 * (level - 1)));
        var gpa = new Gpa((entry & AddressMask & ~(pageSize - 1)) | (gva.Value & (pageSize - 1)));
        return CompleteLeaf(ctx, gva, access, baseCode, entryGpa, entry, narrow: false, gpa, pageSize, user, writable, noExecute, out restart);
    }

    /// <summary>
    /// 32-bit paging (<paramref name="pae"/> false: 4-byte entries, 10-bit indices, 4 MiB pages with CR4.PSE and
    /// PSE-36 address bits) or PAE paging (a PDPTE chosen by linear bits 31:30, then 8-byte entries with 9-bit
    /// indices, 2 MiB pages, XD with EFER.NXE). Linear addresses are 32 bits. PDPTEs are read from guest memory on
    /// every walk, as AMD's nested paging does; the CPU checks them when it loads CR3 and raises #GP there as Intel
    /// does (see <see cref="PaePdptesValid"/>), and a reserved bit seen by a walk is a #PF with RSVD.
    /// </summary>
    private TranslationResult WalkLegacy(in PagingContext ctx, Gva gva, GuestAccess access, bool pae, out bool restart)
    {
        restart = false;
        var linear = gva.Value & 0xFFFF_FFFFUL;
        var kind = access & (GuestAccess.Write | GuestAccess.Execute);
        var write = kind == GuestAccess.Write;
        var fetch = kind == GuestAccess.Execute;
        var userAccess = ctx.Cpl == 3 && (access & GuestAccess.ImplicitSupervisor) == 0;
        var nxe = pae && ctx.NoExecuteEnabled;

        // The I/D bit is reserved (0) unless SMEP is on or XD is available (PAE with NXE).
        var baseCode = (write ? PageFaultErrorCode.Write : 0)
            | (userAccess ? PageFaultErrorCode.User : 0)
            | (fetch && (nxe || ctx.Smep) ? PageFaultErrorCode.InstructionFetch : 0);

        ulong tableGpa;
        Step step;
        nint pointer;
        if (pae)
        {
            var pdpteGpa = new Gpa((ctx.Cr3 & PdptAddressMask) + ((linear >> 30) * sizeof(ulong)));
            step = ResolveEpt(pdpteGpa, EptAccess.Read, out pointer, out _);
            if (step != Step.Ok)
            {
                return StepFailure(step, gva, pdpteGpa, out restart);
            }

            var pdpte = Volatile.Read(ref *(ulong*)pointer);
            if ((pdpte & PresentBit) == 0)
            {
                return TranslationResult.PageFault(gva, baseCode);
            }

            if ((pdpte & PdpteReservedMask) != 0)
            {
                return TranslationResult.PageFault(gva, baseCode | PageFaultErrorCode.Present | PageFaultErrorCode.Reserved);
            }

            tableGpa = pdpte & AddressMask;
        }
        else
        {
            tableGpa = ctx.Cr3 & Legacy32AddressMask;
        }

        var indexBits = pae ? 9 : 10;
        var entryBytes = pae ? sizeof(ulong) : sizeof(uint);
        var reservedAlways = pae ? HighReservedMask | PaeHighReservedMask | (nxe ? 0 : NoExecuteBit) : 0;
        var user = true;
        var writable = true;
        var noExecute = false;
        ulong entry;
        Gpa entryGpa;
        bool large;
        int level;
        for (level = 2; ; level--)
        {
            var shift = Paging.PageShift + (indexBits * (level - 1));
            entryGpa = new Gpa(tableGpa + (((linear >> shift) & ((1UL << indexBits) - 1)) * (ulong)entryBytes));
            step = ResolveEpt(entryGpa, EptAccess.Read, out pointer, out _);
            if (step != Step.Ok)
            {
                return StepFailure(step, gva, entryGpa, out restart);
            }

            entry = pae ? Volatile.Read(ref *(ulong*)pointer) : Volatile.Read(ref *(uint*)pointer);
            if ((entry & PresentBit) == 0)
            {
                return TranslationResult.PageFault(gva, baseCode);
            }

            // PS in a 32-bit PDE counts only with CR4.PSE; PAE always has 2 MiB pages.
            large = level == 2 && (entry & PageSizeBit) != 0 && (pae || ctx.PageSizeExtensions);
            var reserved = reservedAlways | (large ? pae ? Pde2MReservedMask : Pde4MReservedBit : 0);
            if ((entry & reserved) != 0)
            {
                return TranslationResult.PageFault(gva, baseCode | PageFaultErrorCode.Present | PageFaultErrorCode.Reserved);
            }

            user &= (entry & UserBit) != 0;
            writable &= (entry & WritableBit) != 0;
            noExecute |= nxe && (entry & NoExecuteBit) != 0;
            if (level == 1 || large)
            {
                break;
            }

            step = SetGuestBits(entryGpa, entry, AccessedBit, narrow: !pae);
            if (step != Step.Ok)
            {
                return StepFailure(step, gva, entryGpa, out restart);
            }

            tableGpa = entry & (pae ? AddressMask : Legacy32AddressMask);
        }

        ulong pageSize;
        Gpa gpa;
        if (!large)
        {
            pageSize = Paging.PageSize;
            gpa = new Gpa((entry & (pae ? AddressMask : Legacy32AddressMask)) | (linear & (Paging.PageSize - 1)));
        }
        else if (pae)
        {
            pageSize = 2UL << 20;
            gpa = new Gpa((entry & AddressMask & ~(pageSize - 1)) | (linear & (pageSize - 1)));
        }
        else
        {
            // PSE-36: PDE bits 20:13 hold physical address bits 39:32.
            pageSize = 4UL << 20;
            gpa = new Gpa((entry & Pde4MAddressMask) | (((entry >> 13) & 0xFF) << 32) | (linear & (pageSize - 1)));
        }

        return CompleteLeaf(ctx, gva, access, baseCode, entryGpa, entry, narrow: !pae, gpa, pageSize, user, writable, noExecute, out restart);
    }

    /// <summary>
    /// Reads the four PDPTEs of the PAE table at <paramref name="cr3"/> as MOV to CR3 (and a CR0/CR4 write that enters
    /// or changes PAE paging) loads them: false when a present one has a reserved bit set, which the CPU answers with
    /// #GP. A PDPT the walker cannot read (not RAM) counts as valid here: the walk reports it.
    /// </summary>
    /// <param name="cr3">The new CR3 (bits 31:5 locate the table).</param>
    public bool PaePdptesValid(ulong cr3)
    {
        for (var i = 0UL; i < 4; i++)
        {
            var gpa = new Gpa((cr3 & PdptAddressMask) + (i * sizeof(ulong)));
            if (ResolveEpt(gpa, EptAccess.Read, out var pointer, out _) != Step.Ok)
            {
                return true;
            }

            var pdpte = Volatile.Read(ref *(ulong*)pointer);
            if ((pdpte & PresentBit) != 0 && (pdpte & PdpteReservedMask) != 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The leaf's permission checks, its A (and D for a write) and the EPT half of the translation, shared by every
    /// paging mode. <paramref name="user"/>, <paramref name="writable"/> and <paramref name="noExecute"/> are the
    /// combined U/S, R/W and XD of every level used.
    /// </summary>
    private TranslationResult CompleteLeaf(
        in PagingContext ctx,
        Gva gva,
        GuestAccess access,
        PageFaultErrorCode baseCode,
        Gpa entryGpa,
        ulong entry,
        bool narrow,
        Gpa gpa,
        ulong pageSize,
        bool user,
        bool writable,
        bool noExecute,
        out bool restart)
    {
        restart = false;
        var kind = access & (GuestAccess.Write | GuestAccess.Execute);
        var implicitSupervisor = (access & GuestAccess.ImplicitSupervisor) != 0;
        var write = kind == GuestAccess.Write;
        var fetch = kind == GuestAccess.Execute;
        var userAccess = ctx.Cpl == 3 && !implicitSupervisor;

        // Permissions of this access class (see PagePermissions): user accesses obey U/S, R/W and NX at every
        // level; supervisor writes to read-only pages fault only with CR0.WP; SMAP blocks supervisor data
        // accesses to user pages unless RFLAGS.AC is set for an explicit access; SMEP blocks supervisor fetches
        // from user pages.
        bool canRead, canWrite, canExecute;
        if (userAccess)
        {
            canRead = user;
            canWrite = user && writable;
            canExecute = user && !noExecute;
        }
        else
        {
            var smapBlocks = user && ctx.Smap && (implicitSupervisor || !ctx.AlignmentCheck);
            canRead = !smapBlocks;
            canWrite = !smapBlocks && (writable || !ctx.WriteProtect);
            canExecute = !implicitSupervisor && !noExecute && !(user && ctx.Smep);
        }

        var allowed = write ? canWrite : fetch ? canExecute : canRead;
        if (!allowed)
        {
            return TranslationResult.PageFault(gva, baseCode | PageFaultErrorCode.Present);
        }

        // The access is allowed: A on the leaf, and D for a write.
        var leafBits = AccessedBit | (write ? DirtyBit : 0);
        var leafStep = SetGuestBits(entryGpa, entry, leafBits, narrow);
        if (leafStep != Step.Ok)
        {
            return StepFailure(leafStep, gva, entryGpa, out restart);
        }

        var guestDirty = write || (entry & DirtyBit) != 0;
        var permissions = (canRead ? PagePermissions.Read : 0)
            | (canWrite && guestDirty ? PagePermissions.Write : 0)
            | (canExecute ? PagePermissions.Execute : 0)
            | (user ? PagePermissions.User : 0);
        return Finish(gva, gpa, access, pageSize, permissions, global: ctx.GlobalPages && (entry & GlobalBit) != 0, out restart);
    }

    /// <summary>Translates the final gpa through EPT and narrows the guest permissions by the spte's.</summary>
    private TranslationResult Finish(Gva gva, Gpa gpa, GuestAccess access, ulong pageSize, PagePermissions guest, bool global, out bool restart)
    {
        restart = false;
        var kind = access & (GuestAccess.Write | GuestAccess.Execute);
        var eptAccess = kind == GuestAccess.Write ? EptAccess.Write : kind == GuestAccess.Execute ? EptAccess.Execute : EptAccess.Read;
        var step = ResolveEpt(gpa, eptAccess, out var host, out var spte);
        if (step == Step.Mmio)
        {
            return new TranslationResult { Status = TranslationStatus.EptMmio, Gva = gva, Gpa = gpa, PageSize = pageSize };
        }

        if (step != Step.Ok)
        {
            return StepFailure(step, gva, gpa, out restart);
        }

        // A TLB write permission needs a writable spte whose D is set (ResolveEpt set it for a write access).
        var eptWrite = spte.IsWritable && (!_ept.AccessDirtyEnabled || spte.IsDirty || eptAccess == EptAccess.Write);
        var permissions = guest & ~PagePermissions.Write & ~PagePermissions.Read & ~PagePermissions.Execute;
        permissions |= (guest & PagePermissions.Read) != 0 && spte.IsReadable ? PagePermissions.Read : 0;
        permissions |= (guest & PagePermissions.Write) != 0 && eptWrite ? PagePermissions.Write : 0;
        permissions |= (guest & PagePermissions.Execute) != 0 && spte.IsExecutable ? PagePermissions.Execute : 0;
        return new TranslationResult
        {
            Status = TranslationStatus.Ok,
            Gva = gva,
            Gpa = gpa,
            HostAddress = host,
            PageSize = pageSize,
            Permissions = permissions,
            Global = global,
        };
    }

    private static TranslationResult StepFailure(Step step, Gva gva, Gpa gpa, out bool restart)
    {
        restart = step == Step.Restart;
        return step switch
        {
            Step.Mmio => TranslationResult.Failure(gva, gpa, WalkError.PageTableInMmio),
            Step.HostFault => TranslationResult.Failure(gva, gpa, WalkError.HostFault),
            Step.OutOfMemory => TranslationResult.Failure(gva, gpa, WalkError.HostOutOfMemory),
            Step.MemoryFailure => TranslationResult.Failure(gva, gpa, WalkError.MemoryFailure),
            Step.Released => TranslationResult.Failure(gva, gpa, WalkError.MmuReleased),
            _ => TranslationResult.Failure(gva, gpa, WalkError.RetryLimit),
        };
    }

    /// <summary>
    /// Sets <paramref name="bits"/> in the guest entry at <paramref name="entryGpa"/> that was read as
    /// <paramref name="observed"/>: a write to the page-table page, so it needs a writable spte and sets the
    /// spte's D. <see cref="Step.Restart"/> when the guest changed the entry meanwhile (walk again). A
    /// <paramref name="narrow"/> entry is 32-bit paging's 4 bytes, compare-exchanged as 4 bytes.
    /// </summary>
    private Step SetGuestBits(Gpa entryGpa, ulong observed, ulong bits, bool narrow)
    {
        if ((observed & bits) == bits)
        {
            return Step.Ok;
        }

        var step = ResolveEpt(entryGpa, EptAccess.Write, out var pointer, out _);
        if (step != Step.Ok)
        {
            return step;
        }

        var swapped = narrow
            ? Interlocked.CompareExchange(ref *(uint*)pointer, (uint)(observed | bits), (uint)observed) == (uint)observed
            : Interlocked.CompareExchange(ref *(ulong*)pointer, observed | bits, observed) == observed;
        if (!swapped)
        {
            return Step.Restart;
        }

        _guestAdUpdates++;
        return Step.Ok;
    }

    /// <summary>
    /// Makes the spte of <paramref name="gpa"/> allow <paramref name="access"/> (taking EPT violations through the
    /// fault path), sets its A (and D for writes) and returns the host address of <paramref name="gpa"/>.
    /// </summary>
    private Step ResolveEpt(Gpa gpa, EptAccess access, out nint host, out Spte spte)
    {
        var gfn = gpa.Gfn;
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            spte = _ept.Read(gfn, out var level);
            var permitted = spte.IsPresent && access switch
            {
                EptAccess.Write => spte.IsWritable,
                EptAccess.Execute => spte.IsExecutable,
                _ => spte.IsReadable,
            };
            if (!permitted)
            {
                _eptViolations++;
                var outcome = TakeEptViolation(gpa, access);
                if (outcome == Step.Ok)
                {
                    continue;
                }

                host = 0;
                return outcome;
            }

            if (_ept.AccessDirtyEnabled)
            {
                var dirty = access == EptAccess.Write;
                if (!spte.IsAccessed || (dirty && !spte.IsDirty))
                {
                    if (!SetEptAccessedDirty(gfn, spte, dirty))
                    {
                        continue;
                    }

                    _eptAdUpdates++;
                }
            }

            var frames = EptGeometry.FramesPerEntry(level);
            var pfn = new Pfn(spte.Pfn.Value + (gfn.Value & (frames - 1)));
            if (!TryFrameAddress(gfn, pfn, out host))
            {
                // A present spte outside every memslot: the MMU zaps a slot's sptes before it publishes its delete,
                // so this is a stale read that a flush is on its way to correct. Walk again.
                continue;
            }

            host += (nint)gpa.PageOffset;
            return Step.Ok;
        }

        host = 0;
        spte = default;
        return Step.RetryLimit;
    }

    /// <summary>A VM exit for an EPT violation: leaves guest mode (see remarks), runs the fault path, enters again.</summary>
    private Step TakeEptViolation(Gpa gpa, EptAccess access)
    {
        var exited = ExitGuestIfInside();
        try
        {
            var result = _mmu.HandleEptViolation(gpa, access);
            switch (result.Outcome)
            {
                case EptFaultOutcome.Installed or EptFaultOutcome.AlreadyMapped:
                    return Step.Ok;
                case EptFaultOutcome.Mmio:
                    return Step.Mmio;
                case EptFaultOutcome.OutOfMemory:
                    LastFailureDetail = $"gpa 0x{gpa.Value:x} in memslot {result.Slot?.Id}: {result.Detail}";
                    return Step.OutOfMemory;
                case EptFaultOutcome.MemoryFailure:
                    LastFailureDetail = $"gpa 0x{gpa.Value:x} in memslot {result.Slot?.Id}: {result.Detail}";
                    return Step.MemoryFailure;
                default:
                    LastMemoryFault = new MemoryFault(gpa, access, result.Slot?.Id ?? -1);
                    return Step.HostFault;
            }
        }
        catch (GuestMmuReleasedException)
        {
            return Step.Released;
        }
        finally
        {
            if (exited)
            {
                _port!.EnterGuest();
            }
        }
    }

    /// <summary>Hardware's EPT A/D update: A lock-free; D under the MMU lock unless the EPT's policy is lockless.</summary>
    private bool SetEptAccessedDirty(Gfn gfn, Spte observed, bool dirty)
    {
        if (!dirty || _ept.Policy == HardwareAdPolicy.Lockless)
        {
            return _ept.TrySetAccessedDirty(gfn, observed, dirty);
        }

        // DirtyUnderMmuLock: like a write fault, leave guest mode and set D holding the MMU lock for read.
        var exited = ExitGuestIfInside();
        try
        {
            return _mmu.SetAccessedDirtyShared(gfn, observed);
        }
        finally
        {
            if (exited)
            {
                _port!.EnterGuest();
            }
        }
    }

    private bool ExitGuestIfInside()
    {
        if (_port is null || _port.Mode != VcpuMode.InGuest)
        {
            return false;
        }

        _port.ExitGuest();
        return true;
    }

    /// <summary>
    /// The host address of <paramref name="pfn"/>, the frame an spte for <paramref name="gfn"/> maps, through the
    /// backing of the memslot that holds <paramref name="gfn"/>. The remembered slot is only a hint: a slot object
    /// is immutable, and an spte read through a stale slot's backing is caught like any stale spte (the walk
    /// restarts when the port services a flush).
    /// </summary>
    private bool TryFrameAddress(Gfn gfn, Pfn pfn, out nint host)
    {
        var slot = _lastSlot;
        if (slot is null || !slot.ContainsGfn(gfn))
        {
            slot = _mmu.Memslots.FindByGfn(gfn);
            if (slot is null)
            {
                host = 0;
                return false;
            }

            _lastSlot = slot;
        }

        host = slot.Backing.FrameAddress(pfn);
        return true;
    }
}

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The EPT of one VM address space: a root table and 4 levels (PML4E → PDPTE → PDE → PTE) over 48-bit
/// guest-physical addresses, every table a 4 KiB block of an <see cref="EptArena"/>. Leaves are 4 KiB
/// entries at level 1 or large (2 MiB / 1 GiB) entries at levels 2 / 3. Installs use compare-and-swap so
/// vCPU faults run in parallel. Every walk takes the one step of <see cref="TdpIterator"/>: range
/// operations (zap, age, count, audit) iterate, and point lookups, hardware A/D updates and the fault path's
/// install walk one gfn's path with <see cref="TdpPointWalk"/> (as KVM's <c>kvm_tdp_mmu_map</c> uses
/// <c>for_each_tdp_pte</c>); no other code follows a table link. Level-1 work runs on vector kernels of
/// the width chosen at construction (<see cref="VectorWidth"/>).
/// </summary>
/// <remarks>
/// <para><b>Locking</b> (the guest MMU lock is the caller's, a reader-writer lock, taken after every host
/// lock: mmap lock → page lock → page-table lock → MMU lock → arena lock):</para>
/// <list type="bullet">
/// <item><see cref="Install"/>/<see cref="TryInstallLeaf"/>: MMU lock for <b>read</b> (parallel faults);
/// table links and leaves are compare-and-swapped, a table a racing installer linked first goes back to
/// the arena.</item>
/// <item><see cref="ZapLeaves{TSink}"/>, <see cref="AgeLeaves{TSink}"/>, <see cref="ZapAll{TSink}"/>,
/// <see cref="ReclaimRetiredTables"/>: MMU lock for <b>write</b>. Against concurrent "hardware" A/D
/// updates they follow <see cref="Policy"/>.</item>
/// <item><see cref="Read(Gfn, out int)"/>, <see cref="TestYoung"/>, <see cref="CountPresentLeaves(Gfn, Gfn)"/>,
/// <see cref="TrySetAccessedDirty"/>: lock-free walks (the vCPU's hardware walker), or under either lock mode.</item>
/// </list>
/// <para><b>Table lifetime.</b> A table is unlinked only by <see cref="ZapAll{TSink}"/> (every table) and by a
/// large-leaf <see cref="Install"/> over an empty table. Unlinked tables are emptied (lock-free walkers
/// inside them read non-present entries and fault) and <i>retired</i>; they go back to the arena only in
/// <see cref="ReclaimRetiredTables"/>, which the caller runs once no lock-free walk that began before the
/// unlink can still run: after a TLB shootdown every vCPU acknowledged, or with every vCPU stopped. This
/// is the grace period KVM gets from RCU. Leaf zaps never free tables (as KVM's <c>zap_leafs</c>), so
/// the fault path reuses them.</para>
/// <para><b>Invariant</b> (KVM's <c>handle_changed_spte</c>): a present leaf is never replaced by a present
/// leaf with a different pfn; a changed mapping is zapped (and flushed) first.</para>
/// </remarks>
public sealed unsafe partial class EptPageTable : IDisposable // unsafe: tables are native memory walked by pointer.
{
    private readonly EptArena _arena;
    private readonly bool _ownsArena;
    private readonly uint _rootIndex;
    private readonly ulong* _root;
    private readonly bool _accessDirtyEnabled;
    private readonly HardwareAdPolicy _policy;
    private readonly EptVectorWidth _vectorWidth;

    // The bits that make a zapped leaf dirty: D, and with A/D off also W.
    private readonly ulong _dirtyMask;

    // Retired table indices (see remarks). Guarded by _retiredLock, a leaf lock.
    private readonly Lock _retiredLock = new();
    private uint[] _retired = new uint[16];
    private int _retiredCount;

    // Counters, read with Volatile. Those the fault path changes (installs run in parallel under the read
    // lock) use Interlocked; those only zaps and ages change (MMU lock held for write) use plain stores.
    // The present-leaf count is split the same way so a zap needs no locked instruction: _leavesAdded is the
    // net change by installers (and bulk fills), _zappedLeaves what zaps removed; present = added - zapped.
    // The two sides never run at once (read lock vs write lock), so each side's writes are race-free.
    private long _tables = 1;
    private long _leavesAdded;
    private long _installs;
    private long _installRaces;
    private long _tableRaces;
    private long _zaps;
    private long _zappedLeaves;
    private long _dirtyLeaves;
    private long _ages;
    private long _agedYoung;
    private long _youngTests;
    private long _youngHits;
    private long _wholeTableClears;
    private long _emptyTablesSkipped;
    private int _disposed;

    /// <summary>Creates an empty EPT: one zeroed root table.</summary>
    /// <param name="arena">Where tables live; null for a private arena owned (and disposed) by this table.</param>
    /// <param name="accessDirtyEnabled">
    /// True when "hardware" maintains EPT accessed/dirty bits (aging clears bit 8; a zapped leaf is dirty when
    /// bit 9 is set). False models a CPU without EPT A/D: aging must use <see cref="AgingMode.AccessTracking"/>
    /// and a zapped leaf counts as dirty when it is writable or has bit 9 set.
    /// </param>
    /// <param name="policy">How hardware A/D updates and bulk writers share entries (<see cref="HardwareAdPolicy"/>).</param>
    /// <param name="vectorWidth">
    /// The bulk kernels' path (zap, age, count) for this table; null for <see cref="EptVectorPath.Detected"/>,
    /// the widest this CPU accelerates. An unaccelerated width still works, slowly (tests and benchmarks).
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="policy"/> or <paramref name="vectorWidth"/> is not a defined value.</exception>
    public EptPageTable(
        EptArena? arena = null,
        bool accessDirtyEnabled = true,
        HardwareAdPolicy policy = HardwareAdPolicy.DirtyUnderMmuLock,
        EptVectorWidth? vectorWidth = null)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, $"hardware A/D policy {policy} does not exist: use DirtyUnderMmuLock or Lockless");
        }

        var width = vectorWidth ?? EptVectorPath.Detected;
        if (!Enum.IsDefined(width))
        {
            throw new ArgumentOutOfRangeException(nameof(vectorWidth), width, $"vector path {width} does not exist: use Scalar, Vector128, Vector256 or Vector512");
        }

        _ownsArena = arena is null;
        _arena = arena ?? new EptArena();
        _accessDirtyEnabled = accessDirtyEnabled;
        _policy = policy;
        _vectorWidth = width;
        _dirtyMask = accessDirtyEnabled ? Spte.DirtyBit : Spte.DirtyBit | Spte.WritableBit;
        _rootIndex = _arena.Allocate();
        _root = _arena.TablePointer(_rootIndex);
    }

    /// <summary>The arena the tables live in.</summary>
    public EptArena Arena => _arena;

    /// <summary>The root table's arena index (what an EPT pointer would hold).</summary>
    public uint RootTable => _rootIndex;

    /// <summary>True when hardware maintains EPT accessed/dirty bits.</summary>
    public bool AccessDirtyEnabled => _accessDirtyEnabled;

    /// <summary>The contract with concurrent hardware A/D updates.</summary>
    public HardwareAdPolicy Policy => _policy;

    /// <summary>The bulk kernels' path for this table, fixed at construction.</summary>
    public EptVectorWidth VectorWidth => _vectorWidth;

    /// <summary>Tables linked into this page table, root included.</summary>
    public long Tables => Volatile.Read(ref _tables);

    /// <summary>Native bytes of the linked tables (<see cref="Tables"/> × 4 KiB).</summary>
    public long TableBytes => Tables * EptArena.BytesPerTable;

    /// <summary>Present leaves (a large leaf counts once).</summary>
    public long PresentLeaves => ReadPresentLeaves();

    /// <summary>A snapshot of the counters.</summary>
    public EptStats GetStats()
    {
        long retired;
        lock (_retiredLock)
        {
            retired = _retiredCount;
        }

        return new EptStats
        {
            Tables = Volatile.Read(ref _tables),
            RetiredTables = retired,
            PresentLeaves = ReadPresentLeaves(),
            Installs = Volatile.Read(ref _installs),
            InstallRaces = Volatile.Read(ref _installRaces),
            TableRaces = Volatile.Read(ref _tableRaces),
            Zaps = Volatile.Read(ref _zaps),
            ZappedLeaves = Volatile.Read(ref _zappedLeaves),
            DirtyLeaves = Volatile.Read(ref _dirtyLeaves),
            Ages = Volatile.Read(ref _ages),
            AgedYoung = Volatile.Read(ref _agedYoung),
            YoungTests = Volatile.Read(ref _youngTests),
            YoungHits = Volatile.Read(ref _youngHits),
            WholeTableClears = Volatile.Read(ref _wholeTableClears),
            EmptyTablesSkipped = Volatile.Read(ref _emptyTablesSkipped),
        };
    }

    /// <summary>A walk over <c>[start, end)</c> down to <paramref name="minLevel"/> (see <see cref="TdpIterator"/>).</summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minLevel"/> is not 1 to 4.</exception>
    public TdpIterator Iterate(Gfn start, Gfn end, int minLevel = 1)
    {
        EptGeometry.CheckRange(start, end);
        EptGeometry.CheckLevel(minLevel, 1, EptGeometry.RootLevel, nameof(minLevel));
        ThrowIfDisposed();
        return new TdpIterator(_arena, _root, start.Value, end.Value, minLevel);
    }

    /// <summary>The leaf mapping <paramref name="gfn"/>, or the non-present entry where the walk stopped (lock-free).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is at or beyond 2^36.</exception>
    public Spte Read(Gfn gfn) => Read(gfn, out _);

    /// <summary>
    /// Walks from the root without a lock (volatile reads) and returns the first entry on
    /// <paramref name="gfn"/>'s path that is not a present non-leaf: the leaf mapping it (at level 1, or a
    /// large leaf at 2 or 3) or the non-present entry where the walk ended.
    /// </summary>
    /// <param name="gfn">The frame to look up.</param>
    /// <param name="level">The level of the returned entry.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is at or beyond 2^36.</exception>
    public Spte Read(Gfn gfn, out int level)
    {
        EptGeometry.CheckGfn(gfn, nameof(gfn));
        ThrowIfDisposed();
        var walk = new TdpPointWalk(_arena, _root, gfn.Value);
        var entry = walk.Descend(1);
        level = walk.Level;
        return new Spte(entry);
    }

    /// <summary>
    /// The entry at exactly <paramref name="level"/> on <paramref name="gfn"/>'s path (lock-free), e.g. the
    /// expected old value for an <see cref="Install"/> at that level; <see cref="Spte.Empty"/> when the walk
    /// ends above it (a missing table or a larger leaf — <see cref="Read(Gfn, out int)"/> tells which).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is beyond 2^36 or <paramref name="level"/> is not 1 to 4.</exception>
    public Spte ReadAt(Gfn gfn, int level)
    {
        EptGeometry.CheckGfn(gfn, nameof(gfn));
        EptGeometry.CheckLevel(level, 1, EptGeometry.RootLevel, nameof(level));
        ThrowIfDisposed();
        var walk = new TdpPointWalk(_arena, _root, gfn.Value);
        var entry = walk.Descend(level);
        return walk.Level == level ? new Spte(entry) : Spte.Empty;
    }

    /// <summary>
    /// <see cref="Install"/> reduced to a bool: true when the entry changed from <paramref name="expectedOld"/>
    /// to <paramref name="newSpte"/>, false for any other outcome (re-read and decide again).
    /// </summary>
    /// <inheritdoc cref="Install" path="/param"/>
    /// <inheritdoc cref="Install" path="/exception"/>
    public bool TryInstallLeaf(Gfn gfn, int level, Spte expectedOld, Spte newSpte) =>
        Install(gfn, level, expectedOld, newSpte) == InstallResult.Installed;

    /// <summary>
    /// The fault path's install: walks down to <paramref name="level"/> creating missing tables (each linked by
    /// compare-and-swap; a table that loses the race goes back to the arena), then compare-and-swaps the
    /// entry from <paramref name="expectedOld"/> to <paramref name="newSpte"/>. When <paramref name="expectedOld"/>
    /// is a present page table (level 2 or 3) and <paramref name="newSpte"/> a large leaf, the table is
    /// replaced if it holds no entry at all: the link is frozen, every child entry is frozen, the leaf is
    /// written and the table retired (see <see cref="ReclaimRetiredTables"/>). Run it with the MMU lock held for read.
    /// </summary>
    /// <param name="gfn">Any frame the entry covers.</param>
    /// <param name="level">1 = 4 KiB leaf, 2 = 2 MiB, 3 = 1 GiB.</param>
    /// <param name="expectedOld">The value the caller read (<see cref="ReadAt"/>); the install fails if the entry holds anything else, or if it is <see cref="Spte.Frozen"/>.</param>
    /// <param name="newSpte">A present leaf for <paramref name="level"/> (large-page bit iff level &gt; 1, pfn aligned to the level), or <see cref="Spte.Empty"/> to zap one entry by compare-and-swap.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is beyond 2^36 or <paramref name="level"/> is not 1 to 3.</exception>
    /// <exception cref="ArgumentException"><paramref name="newSpte"/> is neither Empty nor a valid present leaf for the level, or would remove a page table.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="expectedOld"/> and <paramref name="newSpte"/> are present leaves with different pfns (a missed invalidation).</exception>
    public InstallResult Install(Gfn gfn, int level, Spte expectedOld, Spte newSpte)
    {
        EptGeometry.CheckGfn(gfn, nameof(gfn));
        EptGeometry.CheckLevel(level, 1, EptGeometry.RootLevel - 1, nameof(level));
        if (!newSpte.IsPresent && newSpte != Spte.Empty)
        {
            throw new ArgumentException($"{newSpte} for {gfn} cannot be installed: only Spte.Empty or a present leaf can", nameof(newSpte));
        }

        newSpte.CheckLeafFor(level, gfn);
        var oldIsTable = TdpStep.IsPresentNonLeaf(expectedOld.Value, level);
        if (newSpte.IsPresent && expectedOld.IsPresent && !oldIsTable && expectedOld.Pfn != newSpte.Pfn)
        {
            throw new InvalidOperationException(
                $"replacing the present leaf for {gfn} at level {level} ({expectedOld}) by one for a different frame ({newSpte}) breaks the EPT invariant: "
                + "a changed mapping must be zapped, and the TLBs flushed, before the new frame is installed (was an invalidation missed?)");
        }

        if (oldIsTable && !newSpte.IsPresent)
        {
            throw new ArgumentException(
                $"Install cannot remove the page table at level {level} for {gfn} ({expectedOld}): tables are only released by ZapAll", nameof(newSpte));
        }

        ThrowIfDisposed();
        if (expectedOld.IsFrozen)
        {
            // Someone else owns a frozen entry until they write it; nobody may compare-and-swap away from it.
            Interlocked.Increment(ref _installRaces);
            return InstallResult.Changed;
        }

        var walk = new TdpPointWalk(_arena, _root, gfn.Value);
        if (!DescendCreatingTables(ref walk, level, out var failure))
        {
            Interlocked.Increment(ref _installRaces);
            return failure;
        }

        ref var target = ref walk.Entry;
        if (oldIsTable)
        {
            return ReplaceTable(ref target, expectedOld.Value, newSpte.Value);
        }

        var counts = level == 1 ? EptArena.CountsOf(walk.Table) : null;
        if (counts is not null)
        {
            NoteMayHoldDirty(counts, newSpte.Value);
        }

        if (Interlocked.CompareExchange(ref target, newSpte.Value, expectedOld.Value) != expectedOld.Value)
        {
            Interlocked.Increment(ref _installRaces);
            return InstallResult.Changed;
        }

        var delta = (newSpte.IsPresent ? 1 : 0) - (expectedOld.IsPresent ? 1 : 0);
        if (delta != 0)
        {
            Interlocked.Add(ref _leavesAdded, delta);
            if (counts is not null)
            {
                Interlocked.Add(ref counts->Present, delta);
            }
        }

        Interlocked.Increment(ref _installs);
        return InstallResult.Installed;
    }

    /// <summary>
    /// What "hardware" does on an access through a leaf: compare-and-swap <paramref name="observed"/> (the
    /// present leaf it walked) to itself with the accessed bit, and the dirty bit when <paramref name="dirty"/>.
    /// False when the entry changed (zapped, aged, upgraded): walk again. Under
    /// <see cref="HardwareAdPolicy.DirtyUnderMmuLock"/> a call with <paramref name="dirty"/> true must hold the
    /// MMU lock for read.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is at or beyond 2^36.</exception>
    /// <exception cref="ArgumentException"><paramref name="observed"/> is not present, or <paramref name="dirty"/> is asked of a leaf without W.</exception>
    public bool TrySetAccessedDirty(Gfn gfn, Spte observed, bool dirty)
    {
        if (!observed.IsPresent)
        {
            throw new ArgumentException($"{observed} for {gfn} is not present: hardware sets A/D only on present leaves", nameof(observed));
        }

        if (dirty && !observed.IsWritable)
        {
            throw new ArgumentException($"{observed} for {gfn} is not writable: a write through it faults, so hardware never sets its dirty bit", nameof(dirty));
        }

        EptGeometry.CheckGfn(gfn, nameof(gfn));
        ThrowIfDisposed();
        var walk = new TdpPointWalk(_arena, _root, gfn.Value);
        var value = walk.Descend(1);
        if (value != observed.Value)
        {
            return false;
        }

        var updated = observed.WithAccessed(dirty).Value;
        if (updated == value)
        {
            return true;
        }

        if (walk.Level == 1)
        {
            // Before the entry can be seen dirty (see LeafTableCounts).
            NoteMayHoldDirty(EptArena.CountsOf(walk.Table), updated);
        }

        return Interlocked.CompareExchange(ref walk.Entry, updated, value) == value;
    }

    /// <summary>
    /// Returns every retired table to the arena. Precondition: no lock-free walk (vCPU page walk, lockless
    /// read) that started before the tables were unlinked can still be running — after a TLB shootdown that
    /// every vCPU acknowledged, or with all vCPUs stopped. Run with the MMU lock held for write.
    /// </summary>
    /// <returns>The number of tables returned.</returns>
    public long ReclaimRetiredTables()
    {
        ThrowIfDisposed();
        lock (_retiredLock)
        {
            for (var i = 0; i < _retiredCount; i++)
            {
                _arena.Free(_retired[i]);
            }

            var reclaimed = _retiredCount;
            _retiredCount = 0;
            return reclaimed;
        }
    }

    /// <summary>
    /// Releases every table: with a private arena the arena itself, else every linked and retired table and
    /// the root go back to the shared arena. No other thread may use the page table any more.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_ownsArena)
        {
            _arena.Dispose();
            return;
        }

        var discard = default(DiscardDirtySink);
        ZapAllCore(dirtyMask: 0, ref discard);
        lock (_retiredLock)
        {
            for (var i = 0; i < _retiredCount; i++)
            {
                _arena.Free(_retired[i]);
            }

            _retiredCount = 0;
        }

        _arena.Free(_rootIndex);
        _tables = 0;
    }

    /// <summary>
    /// Zapped first, added second: a zap that lands between the two reads is missed whole and an install is
    /// seen whole, so a zap racing with a lock-free reader never drives its answer below zero. Exact under
    /// either lock mode once the other side has drained, and when quiescent.
    /// </summary>
    private long ReadPresentLeaves()
    {
        var zapped = Volatile.Read(ref _zappedLeaves);
        return Volatile.Read(ref _leavesAdded) - zapped;
    }

    /// <summary>Sets the table's dirty hint when <paramref name="value"/> is a present entry a zap would report (read first, so clean installs write nothing shared).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void NoteMayHoldDirty(LeafTableCounts* counts, ulong value)
    {
        if (IsReportedDirty(value) && Volatile.Read(ref counts->MayHoldDirty) == 0)
        {
            Volatile.Write(ref counts->MayHoldDirty, 1);
        }
    }

    /// <summary>True when a zap would report <paramref name="value"/> dirty: present with a bit of the dirty mask.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsReportedDirty(ulong value) => (value & Spte.MmuPresentBit) != 0 && (value & _dirtyMask) != 0;

    /// <summary>
    /// Moves <paramref name="walk"/> down to its gfn's entry at <paramref name="level"/> (KVM's
    /// <c>kvm_tdp_mmu_map</c> loop), linking each missing table by compare-and-swap and stepping again, so
    /// the walk enters a table only through a link it has just read. False (with the reason) when a frozen
    /// entry or a larger leaf is in the way. MMU lock held for read (or write).
    /// </summary>
    private bool DescendCreatingTables(ref TdpPointWalk walk, int level, out InstallResult failure)
    {
        while (true)
        {
            var entry = walk.Descend(level);
            if (walk.Level == level)
            {
                failure = InstallResult.Installed;
                return true;
            }

            // The walk stopped above the level on an entry that links no table.
            if (entry == Spte.FrozenValue)
            {
                failure = InstallResult.Changed;
                return false;
            }

            if ((entry & Spte.MmuPresentBit) != 0)
            {
                failure = InstallResult.CoveredByLargeLeaf;
                return false;
            }

            var child = _arena.Allocate();
            if (Interlocked.CompareExchange(ref walk.Entry, Spte.NonLeaf(child).Value, entry) == entry)
            {
                Interlocked.Increment(ref _tables);
                continue;
            }

            // Another installer linked its table first: ours was never visible, so it can go back at once.
            _arena.Free(child);
            Interlocked.Increment(ref _tableRaces);
        }
    }

    /// <summary>
    /// Replaces the page table <paramref name="oldLink"/> points to by the large leaf <paramref name="leaf"/>,
    /// if the table is empty. Protocol: freeze the link (others now see a non-present entry and retry), then
    /// freeze every child entry by compare-and-swap from 0 — a racing installer's compare-and-swap into the
    /// table now fails, and one that got in first makes ours fail, in which case everything is unfrozen and
    /// the answer is <see cref="InstallResult.TablePopulated"/>. Only the freezer writes the link afterwards.
    /// </summary>
    private InstallResult ReplaceTable(ref ulong link, ulong oldLink, ulong leaf)
    {
        if (Interlocked.CompareExchange(ref link, Spte.FrozenValue, oldLink) != oldLink)
        {
            Interlocked.Increment(ref _installRaces);
            return InstallResult.Changed;
        }

        var childIndex = TdpStep.TableIndexOf(oldLink);
        var child = _arena.TablePointer(childIndex);
        var frozen = 0;
        while (frozen < EptGeometry.EntriesPerTable && Interlocked.CompareExchange(ref child[frozen], Spte.FrozenValue, 0) == 0)
        {
            frozen++;
        }

        if (frozen < EptGeometry.EntriesPerTable)
        {
            for (var i = 0; i < frozen; i++)
            {
                Volatile.Write(ref child[i], 0);
            }

            Volatile.Write(ref link, oldLink);
            return InstallResult.TablePopulated;
        }

        // The child stays frozen until reclaimed, so a stale compare-and-swap into it can never succeed.
        Volatile.Write(ref link, leaf);
        Retire(childIndex);
        Interlocked.Decrement(ref _tables);
        Interlocked.Increment(ref _leavesAdded);
        Interlocked.Increment(ref _installs);
        return InstallResult.Installed;
    }

    private void Retire(uint table)
    {
        lock (_retiredLock)
        {
            if (_retiredCount == _retired.Length)
            {
                Array.Resize(ref _retired, _retired.Length * 2);
            }

            _retired[_retiredCount++] = table;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}

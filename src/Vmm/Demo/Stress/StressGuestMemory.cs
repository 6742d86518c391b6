using System.Buffers.Binary;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The stress demo's VMM side of guest RAM: the memslots (the data area cut into 2 MiB chunks, one memslot each, so a
/// chunk can be unmapped and mapped again), gpa → hva through them, the host's writes into the guest's control page
/// and discard counters, pausing every vCPU, and the remap itself.
/// </summary>
/// <remarks>Memslots: slot 0 covers [0, data area), slot 1 + k chunk k (the DMA buffers' chunk too), the last one the
/// RAM above them. A
/// chunk's hva changes with every remap: read it through <see cref="ChunkHva"/> at the time of use, inside the
/// <see cref="HostOperationGate"/> (a remap holds it exclusively).</remarks>
internal sealed class StressGuestMemory
{
    private readonly TdpMmu _mmu;
    private readonly HostProcess _process;
    private readonly IReadOnlyList<Lock> _vcpuGates;
    private readonly IGuestMemoryBacking _backing;
    private readonly ulong _ramBytes;
    private readonly bool _mergeable;
    private readonly bool _hugePages;

    /// <summary>Cuts guest RAM into the demo's memslots; call before any vCPU runs.</summary>
    /// <param name="mmu">The VM's MMU (memslot 0 covering all guest RAM, as the VM set it up).</param>
    /// <param name="process">The VM's host process.</param>
    /// <param name="layout">Where the guest's data area is.</param>
    /// <param name="vcpuGates">Every vCPU's slice gate.</param>
    /// <param name="mergeable">Whether guest RAM is advised MADV_MERGEABLE (a remapped chunk is advised again).</param>
    /// <param name="hugePages">Whether guest RAM is advised MADV_HUGEPAGE (likewise).</param>
    public StressGuestMemory(TdpMmu mmu, HostProcess process, StressGuestLayout layout, IReadOnlyList<Lock> vcpuGates, bool mergeable, bool hugePages)
    {
        _mmu = mmu;
        _process = process;
        _vcpuGates = vcpuGates;
        Layout = layout;
        _mergeable = mergeable;
        _hugePages = hugePages;
        var whole = mmu.Memslots.FindById(0) ?? throw new InvalidOperationException("the VM has no memslot 0");
        _backing = whole.Backing;
        _ramBytes = whole.Size;
        var ramBase = whole.UserspaceAddress;
        mmu.DeleteMemoryRegion(0);
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), layout.DataGpa, ramBase, _backing);
        for (var chunk = 0; chunk < layout.HostChunks; chunk++)
        {
            var gpa = layout.ChunkGpa(chunk);
            mmu.SetMemoryRegion(ChunkSlot(chunk), MemslotFlags.None, new Gpa(gpa), StressGuestLayout.ChunkBytes, ramBase + gpa, _backing);
        }

        if (_ramBytes > layout.HostEndGpa)
        {
            mmu.SetMemoryRegion(layout.HostChunks + 1, MemslotFlags.None, new Gpa(layout.HostEndGpa), _ramBytes - layout.HostEndGpa, ramBase + layout.HostEndGpa, _backing);
        }
    }

    /// <summary>The guest's layout.</summary>
    public StressGuestLayout Layout { get; }

    /// <summary>Remaps done.</summary>
    public long Remaps { get; private set; }

    /// <summary>The host address of <paramref name="gpa"/> now.</summary>
    /// <exception cref="InvalidOperationException">No memslot covers it.</exception>
    public Hva HvaOf(ulong gpa)
    {
        var slot = _mmu.Memslots.FindByGfn(new Gpa(gpa).Gfn) ?? throw new InvalidOperationException($"no memslot covers gpa 0x{gpa:x}");
        return slot.GfnToHva(new Gpa(gpa).Gfn) + (gpa & (Paging.PageSize - 1));
    }

    /// <summary>
    /// Calls <paramref name="action"/> with each host range behind guest-physical <c>[gpa, gpa + length)</c>, one per
    /// memslot it crosses (a remapped chunk lies elsewhere in the host than its neighbours).
    /// </summary>
    public void ForEachHostRange(ulong gpa, ulong length, Action<Hva, ulong> action)
    {
        var end = gpa + length;
        while (gpa < end)
        {
            var slot = _mmu.Memslots.FindByGfn(new Gpa(gpa).Gfn) ?? throw new InvalidOperationException($"no memslot covers gpa 0x{gpa:x}");
            var piece = Math.Min(end, slot.BaseGpa.Value + slot.Size) - gpa;
            action(HvaOf(gpa), piece);
            gpa += piece;
        }
    }

    /// <summary>The host address of chunk <paramref name="chunk"/> now.</summary>
    public Hva ChunkHva(int chunk) => HvaOf(Layout.ChunkGpa(chunk));

    /// <summary>Writes a 32-bit value into guest RAM through the host (a VMM store into shared memory).</summary>
    public void WriteU32(ulong gpa, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        _process.Write(HvaOf(gpa), bytes);
    }

    /// <summary>Reads a 32-bit value of guest RAM through the host.</summary>
    public uint ReadU32(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[4];
        _process.Read(HvaOf(gpa), bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    /// <summary>Writes a 64-bit value into guest RAM through the host.</summary>
    public void WriteU64(ulong gpa, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        _process.Write(HvaOf(gpa), bytes);
    }

    /// <summary>Reads a 64-bit value of guest RAM through the host.</summary>
    public ulong ReadU64(ulong gpa)
    {
        Span<byte> bytes = stackalloc byte[8];
        _process.Read(HvaOf(gpa), bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>
    /// Runs <paramref name="action"/> with every vCPU paused between two slices (no guest access or fault in flight, none
    /// starting), as a VMM kicks its vCPUs out before a memory transaction.
    /// </summary>
    public void WithVcpusPaused(Action action)
    {
        var taken = 0;
        try
        {
            foreach (var gate in _vcpuGates)
            {
                gate.Enter();
                taken++;
            }

            action();
        }
        finally
        {
            for (var i = taken - 1; i >= 0; i--)
            {
                _vcpuGates[i].Exit();
            }
        }
    }

    /// <summary>
    /// munmap and re-mmap of chunk <paramref name="chunk"/>, its contents kept, with every vCPU paused: a new 2 MiB-aligned
    /// anonymous mapping (advised as guest RAM is), the chunk's pages copied into it, the chunk's memslot deleted (its
    /// sptes zapped), the old mapping unmapped, the memslot created again over the new mapping. Call it holding the
    /// <see cref="HostOperationGate"/> exclusively.
    /// </summary>
    public void Remap(int chunk)
    {
        WithVcpusPaused(() =>
        {
            var gpa = Layout.ChunkGpa(chunk);
            var old = ChunkHva(chunk);
            var fresh = MapAligned();
            var page = new byte[Paging.PageSize];
            for (var offset = 0UL; offset < StressGuestLayout.ChunkBytes; offset += Paging.PageSize)
            {
                _process.Read(old + offset, page);
                _process.Write(fresh + offset, page);
            }

            _mmu.DeleteMemoryRegion(ChunkSlot(chunk));
            _process.Munmap(old, StressGuestLayout.ChunkBytes);
            _mmu.SetMemoryRegion(ChunkSlot(chunk), MemslotFlags.None, new Gpa(gpa), StressGuestLayout.ChunkBytes, fresh, _backing);
            Remaps++;
        });
    }

    private static int ChunkSlot(int chunk) => chunk + 1;

    /// <summary>A new 2 MiB-aligned read-write mapping of one chunk (2 MiB more is mapped and the unaligned ends unmapped).</summary>
    private Hva MapAligned()
    {
        const ulong size = StressGuestLayout.ChunkBytes;
        var reserved = _process.Mmap(size * 2, Protection.Read | Protection.Write);
        var aligned = new Hva((reserved.Value + size - 1) & ~(size - 1));
        if (aligned.Value > reserved.Value)
        {
            _process.Munmap(reserved, aligned.Value - reserved.Value);
        }

        var tail = reserved.Value + (size * 2) - (aligned.Value + size);
        if (tail > 0)
        {
            _process.Munmap(aligned + size, tail);
        }

        if (_hugePages)
        {
            _process.Madvise(aligned, size, Advice.HugePage);
        }

        if (_mergeable)
        {
            _process.Madvise(aligned, size, Advice.Mergeable);
        }

        return aligned;
    }
}

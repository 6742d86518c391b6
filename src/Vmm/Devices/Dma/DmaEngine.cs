using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.Notifier;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Devices.Dma;

/// <summary>
/// A DMA copy engine at <see cref="BaseAddress"/>: the guest writes a guest-physical source, destination and length,
/// rings the doorbell, and polls the status until it is no longer <see cref="DmaStatus.Busy"/>. The engine's own thread
/// translates each buffer gpa → hva through the memslots and copies host frame to host frame through its
/// <see cref="DmaRegistrationCache"/>, racing the vCPUs and the host's daemons, which keep changing the process's mappings.
/// </summary>
/// <remarks>
/// <para>Registers, 64 bits each, little-endian, read and written whole or as aligned 32-bit halves: 0x00 ID
/// (<see cref="Magic"/>, read-only), 0x08 source gpa, 0x10 destination gpa, 0x18 length, 0x20 doorbell (a write to its
/// low byte starts the copy unless one is in progress; reads 0), 0x28 status (<see cref="DmaStatus"/>, read-only), 0x30 copies completed
/// (read-only), 0x38 the cache mode (<see cref="DmaCacheMode"/>, read-only). Other offsets read 0 and ignore writes.</para>
/// <para>A buffer must lie in one memslot; the destination's must be writable. Threads: the registers are guarded by
/// the engine's lock, which a copy does not hold (a vCPU polling the status never waits for a copy); the copy runs on
/// the engine's thread, never on a vCPU's, because the cache may wait for invalidations in flight to end and those may
/// wait for every vCPU to acknowledge a TLB shootdown. Counters may be read from any thread.</para>
/// </remarks>
public sealed class DmaEngine : IMmioDevice, IDisposable
{
    /// <summary>The guest-physical base of the register page (below the I/O APIC, in the PC's device hole).</summary>
    public const ulong BaseAddress = 0xFEB00000;

    /// <summary>The size of the register window the bus maps.</summary>
    public const ulong Size = 0x1000;

    /// <summary>The ID register's value: "DMA1" in ASCII, little-endian.</summary>
    public const ulong Magic = 0x31414D44;

    /// <summary>The longest copy: 1 MiB.</summary>
    public const int MaxLength = 1 << 20;

    /// <summary>Offset of the ID register.</summary>
    public const ulong IdRegister = 0x00;

    /// <summary>Offset of the source gpa register.</summary>
    public const ulong SourceRegister = 0x08;

    /// <summary>Offset of the destination gpa register.</summary>
    public const ulong DestinationRegister = 0x10;

    /// <summary>Offset of the length register.</summary>
    public const ulong LengthRegister = 0x18;

    /// <summary>Offset of the doorbell.</summary>
    public const ulong DoorbellRegister = 0x20;

    /// <summary>Offset of the status register.</summary>
    public const ulong StatusRegister = 0x28;

    /// <summary>Offset of the completed-copies register.</summary>
    public const ulong CompletedRegister = 0x30;

    /// <summary>Offset of the mode register.</summary>
    public const ulong ModeRegister = 0x38;

    private const int RegisterCount = 8;

    private readonly Lock _lock = new();
    private readonly MemslotSet _memslots;
    private readonly ulong[] _registers = new ulong[RegisterCount];
    private readonly SemaphoreSlim _doorbell = new(0);

    // Set while no copy is pending or running: reset with the status set to Busy, set once the status is published (both under _lock).
    private readonly ManualResetEventSlim _idle = new(true);
    private readonly Thread _worker;

    // Guarded by _lock: the copy the doorbell started, taken by the engine's thread.
    private (Gpa Source, Gpa Destination, ulong Length) _pending;
    private volatile bool _stopping;

    /// <summary>Creates the engine over <paramref name="memslots"/>, whose slots are memory of <paramref name="process"/>.</summary>
    /// <param name="memslots">The VM's memslots (gpa → hva).</param>
    /// <param name="process">The host process behind every memslot.</param>
    /// <param name="mode">How the engine caches translations.</param>
    public DmaEngine(MemslotSet memslots, HostProcess process, DmaCacheMode mode)
    {
        ArgumentNullException.ThrowIfNull(memslots);
        _memslots = memslots;
        Cache = new DmaRegistrationCache(process, mode);
        _registers[Slot(IdRegister)] = Magic;
        _registers[Slot(ModeRegister)] = (ulong)mode;
        _worker = new Thread(Work) { IsBackground = true, Name = "dma-engine" };
        _worker.Start();
    }

    /// <inheritdoc />
    public string Name => "dma";

    /// <summary>The registration cache the copies go through.</summary>
    public DmaRegistrationCache Cache { get; }

    /// <summary>The engine's counters now (read from any thread).</summary>
    public DmaEngineCounters Counters => Cache.Counters;

    /// <summary>Registers the register page on <paramref name="bus"/>.</summary>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterMmio(BaseAddress, Size, this);
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (!TryLocate(offset, data.Length, out var index, out var shift))
        {
            return;
        }

        ulong value;
        lock (_lock)
        {
            value = index == Slot(DoorbellRegister) ? 0 : _registers[index];
        }

        value >>= shift;
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(value >> (8 * i));
        }
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (!TryLocate(offset, data.Length, out var index, out var shift))
        {
            return;
        }

        ulong value = 0;
        for (var i = 0; i < data.Length; i++)
        {
            value |= (ulong)data[i] << (8 * i);
        }

        var mask = (data.Length == 8 ? ulong.MaxValue : (1UL << (8 * data.Length)) - 1) << shift;
        lock (_lock)
        {
            switch ((ulong)index * 8)
            {
                case SourceRegister or DestinationRegister or LengthRegister:
                    _registers[index] = (_registers[index] & ~mask) | ((value << shift) & mask);
                    break;
                case DoorbellRegister when shift == 0 && _registers[Slot(StatusRegister)] != (ulong)DmaStatus.Busy:
                    _pending = (new Gpa(_registers[Slot(SourceRegister)]), new Gpa(_registers[Slot(DestinationRegister)]), _registers[Slot(LengthRegister)]);
                    _registers[Slot(StatusRegister)] = (ulong)DmaStatus.Busy;
                    _idle.Reset();
                    _doorbell.Release();
                    break;
            }
        }
    }

    /// <summary>
    /// Waits until no copy is pending or running (the status is no longer <see cref="DmaStatus.Busy"/>), at most
    /// <paramref name="timeout"/>. Only the guest starts copies, so a caller that keeps every vCPU out of the guest
    /// (between two slices) sees the engine stay idle until it lets them run again.
    /// </summary>
    /// <returns>True when the engine is idle; false when the timeout passed first.</returns>
    public bool WaitIdle(TimeSpan timeout) => _idle.Wait(timeout);

    /// <summary>Stops the engine's thread (after the copy in progress, if any) and closes the cache and its user channel. Idempotent.</summary>
    public void Dispose()
    {
        if (!_stopping)
        {
            _stopping = true;
            _doorbell.Release();
            _worker.Join();
            _doorbell.Dispose();
            _idle.Dispose();
        }

        Cache.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"DMA engine at 0x{BaseAddress:X} ({Cache.Mode} cache)";

    private static int Slot(ulong register) => (int)(register / 8);

    /// <summary>An aligned access of 4 or 8 bytes inside the register file: its register and the bit shift of its first byte.</summary>
    private static bool TryLocate(ulong offset, int length, out int index, out int shift)
    {
        index = (int)(offset / 8);
        shift = (int)(offset % 8) * 8;
        return length is 4 or 8 && offset % (ulong)length == 0 && index < RegisterCount;
    }

    /// <summary>The engine's thread: one copy per doorbell, its status published when it is done.</summary>
    private void Work()
    {
        while (true)
        {
            _doorbell.Wait();
            if (_stopping)
            {
                return;
            }

            (Gpa Source, Gpa Destination, ulong Length) copy;
            lock (_lock)
            {
                copy = _pending;
            }

            var status = Run(copy.Source, copy.Destination, copy.Length);
            lock (_lock)
            {
                _registers[Slot(StatusRegister)] = (ulong)status;
                if (status == DmaStatus.Done)
                {
                    _registers[Slot(CompletedRegister)]++;
                }

                _idle.Set();
            }
        }
    }

    /// <summary>One copy: the buffers translated to host addresses, then the cache's copy. Runs on the engine's thread.</summary>
    private DmaStatus Run(Gpa source, Gpa destination, ulong length)
    {
        if (length == 0 || length > MaxLength
            || !TryTranslate(source, length, write: false, out var from)
            || !TryTranslate(destination, length, write: true, out var to))
        {
            Cache.CountRefused();
            return DmaStatus.BadRange;
        }

        return Cache.Copy(from, to, (int)length);
    }

    /// <summary>gpa → hva for a whole buffer, which must lie in one memslot (writable for a destination).</summary>
    private bool TryTranslate(Gpa start, ulong length, bool write, out Hva hva)
    {
        hva = default;
        var last = start.Value + length - 1;
        if (last < start.Value)
        {
            return false;
        }

        var snapshot = _memslots.Current;
        var slot = snapshot.FindByGfn(start.Gfn);
        if (slot is null || !slot.ContainsGfn(new Gpa(last).Gfn) || (write && slot.IsReadOnly))
        {
            return false;
        }

        hva = slot.GfnToHva(start.Gfn) + (start.Value & (Paging.PageSize - 1));
        return true;
    }
}

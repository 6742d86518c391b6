using Hypervisor.HostMm;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Devices.Dma;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>
/// The host's operations on the guest's buffers in <see cref="DmaDemo"/>, one per <see cref="Strike"/>, in turn:
/// swap-out, a KSM scan, a migration to the other node, a remap. Runs on the demo's thread only.
/// </summary>
/// <remarks>
/// The unsafe cache writes through translations the host has dropped, among them into a frame that pageout has
/// unmapped and is writing to swap: a write landing between the slot's checksum and the device's copy leaves a slot
/// whose data no longer matches, and reading the page back fails with <see cref="MemoryFailureException"/> (the
/// checksum refuses the data; nothing wrong is returned). With <c>toleratesMemoryFailures</c> (the unsafe phase) a
/// remap counts such a page in <see cref="UnreadablePages"/> and restores it as zeros; otherwise (the safe phase, where
/// no stale write exists) the failure is a host bug and propagates.
/// </remarks>
internal sealed class DmaPressure(HostProcess process, Host host, Lock gate, DmaEngine? engine, Random random, bool toleratesMemoryFailures)
{
    private static readonly TimeSpan EngineTimeout = TimeSpan.FromSeconds(30);

    private Hva _start;
    private int _buffers;
    private int _pages;
    private int _turn;

    /// <summary><c>madvise(MADV_PAGEOUT)</c> calls.</summary>
    public long PageOuts { get; private set; }

    /// <summary>KSM scanner steps.</summary>
    public long KsmSteps { get; private set; }

    /// <summary><c>move_pages</c> calls.</summary>
    public long Migrations { get; private set; }

    /// <summary>Buffers unmapped and mapped again.</summary>
    public long Remaps { get; private set; }

    /// <summary>Pages a remap could not read back (their swap slot failed its checksum) and restored as zeros.</summary>
    public long UnreadablePages { get; private set; }

    private ulong BufferBytes => (ulong)_pages * Paging.PageSize;

    /// <summary>Makes the <paramref name="buffers"/> buffers of <paramref name="pages"/> pages from <paramref name="start"/> the targets, mergeable, and starts KSM.</summary>
    public void Start(Hva start, int buffers, int pages)
    {
        (_start, _buffers, _pages) = (start, buffers, pages);

        // Only the buffers are mergeable, so each scanner step is over them alone.
        process.Madvise(start, (ulong)buffers * BufferBytes, Advice.Mergeable);
        host.Ksm.Run = KsmRunMode.Merge;
    }

    /// <summary>One operation on a random buffer, the next kind in turn.</summary>
    public void Strike()
    {
        var buffer = _start + ((ulong)random.Next(_buffers) * BufferBytes);
        switch (_turn++ % 4)
        {
            case 0:
                process.Madvise(buffer, BufferBytes, Advice.PageOut);
                PageOuts++;
                break;
            case 1:
                host.Ksm.Step(_buffers * _pages);
                KsmSteps++;
                break;
            case 2:
                Migrate(buffer);
                break;
            default:
                Remap(buffer);
                break;
        }
    }

    /// <summary>
    /// munmap and MAP_FIXED mmap of one buffer, its contents copied out and back, with the vCPU held between two slices
    /// and the engine idle: the engine copies on its own thread, and a copy the guest started before the slice ended
    /// would otherwise fault on the unmapped buffer or land between the read and the munmap and be lost.
    /// </summary>
    public void Remap(Hva buffer)
    {
        var contents = new byte[BufferBytes];
        lock (gate)
        {
            if (engine is not null && !engine.WaitIdle(EngineTimeout))
            {
                throw new TimeoutException($"the DMA engine stayed busy for {EngineTimeout.TotalSeconds:0} s with the vCPU held");
            }

            for (var page = 0; page < _pages; page++)
            {
                var offset = page * (int)Paging.PageSize;
                try
                {
                    process.Read(buffer + (ulong)offset, contents.AsSpan(offset, (int)Paging.PageSize));
                }
                catch (MemoryFailureException) when (toleratesMemoryFailures)
                {
                    UnreadablePages++;
                }
            }

            process.Munmap(buffer, BufferBytes);
            process.Mmap(BufferBytes, Protection.Read | Protection.Write, MmapFlags.Fixed, buffer);
            process.Write(buffer, contents);
            process.Madvise(buffer, BufferBytes, Advice.Mergeable);
        }

        Remaps++;
    }

    private void Migrate(Hva buffer)
    {
        var pages = new Hva[_pages];
        var nodes = new int[_pages];
        var target = (int)(Migrations % 2 == 0 ? 1 : 0);
        for (var i = 0; i < _pages; i++)
        {
            pages[i] = buffer + ((ulong)i * Paging.PageSize);
            nodes[i] = target;
        }

        host.Migration.MovePages(process, pages, nodes);
        Migrations++;
    }
}

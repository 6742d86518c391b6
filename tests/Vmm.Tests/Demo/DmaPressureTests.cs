using Hypervisor.HostMm;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Demo.Dma;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="DmaPressure"/>'s remap of a buffer whose swap slots fail their checksum, as the unsafe cache's stale write
/// into a frame under pageout leaves them (here every write is stored with a bit flipped, deterministically): the unsafe
/// phase counts the pages and restores them as zeros, the others intact; the safe phase lets the memory failure propagate.
/// </summary>
public sealed class DmaPressureTests
{
    private const int Pages = 4;
    private const ulong GuestBytes = 16UL << 20;

    [Test]
    public void TheUnsafePhaseRemapsABufferWhoseSwapSlotsFailTheirChecksum()
    {
        using var vm = NewVm();
        var (pressure, buffer) = PagedOutBuffer(vm, toleratesMemoryFailures: true, corruptPages: 2);

        pressure.Remap(buffer);

        var contents = new byte[Pages * (int)Paging.PageSize];
        vm.Process!.Read(buffer, contents);
        Assert.Multiple(() =>
        {
            Assert.That(pressure.Remaps, Is.EqualTo(1));
            Assert.That(pressure.UnreadablePages, Is.EqualTo(2), "the two paged-out pages");
            Assert.That(vm.Host!.Reclaim.Area!.GetStats().ChecksumFailures, Is.EqualTo(2));
            Assert.That(contents.AsSpan(0, 2 * (int)Paging.PageSize).ContainsAnyExcept((byte)0), Is.False, "restored as zeros");
            Assert.That(contents.AsSpan(2 * (int)Paging.PageSize).ToArray(), Is.All.EqualTo((byte)0x5a), "the resident pages kept");
        });
    }

    [Test]
    public void TheSafePhaseLetsTheMemoryFailurePropagate()
    {
        using var vm = NewVm();
        var (pressure, buffer) = PagedOutBuffer(vm, toleratesMemoryFailures: false, corruptPages: 1);

        Assert.Throws<MemoryFailureException>(() => pressure.Remap(buffer));
        Assert.That(pressure.Remaps, Is.Zero);
    }

    private static Vm NewVm() => new(
        new VmOptions
        {
            MemoryBytes = GuestBytes,
            HostMemoryBytes = GuestBytes,
            Swap = new SwapOptions
            {
                Kind = SwapDeviceKind.Zram,
                SizeBytes = VmOptions.DefaultSwapBytes(GuestBytes),
                FaultInjection = new SwapFaultInjection { CorruptWriteRate = 1 },
            },
        },
        new GuestConsole());

    /// <summary>A buffer of <see cref="Pages"/> pages of 0x5a whose first <paramref name="corruptPages"/> pages were paged out to slots that fail their checksum.</summary>
    private static (DmaPressure Pressure, Hva Buffer) PagedOutBuffer(Vm vm, bool toleratesMemoryFailures, int corruptPages)
    {
        var process = vm.Process!;
        var buffer = vm.GuestMemory!.Base + (1UL << 20);
        var pressure = new DmaPressure(process, vm.Host!, new Lock(), vm.Dma, new Random(1), toleratesMemoryFailures);
        pressure.Start(buffer, 1, Pages);
        var pattern = new byte[Pages * (int)Paging.PageSize];
        pattern.AsSpan().Fill(0x5a);
        process.Write(buffer, pattern);
        process.Madvise(buffer, (ulong)corruptPages * Paging.PageSize, Advice.PageOut);
        Assert.That(vm.Host!.Reclaim.Stats.Pswpout, Is.EqualTo(corruptPages), "the pages went to swap");
        return (pressure, buffer);
    }
}

using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Bench.Vmm;

/// <summary>
/// Guest instruction throughput of a memory-bound guest with and without transparent huge pages: memtest (fill 32 MiB
/// with a pattern, verify it) booted through PVH on the emulated accelerator, run to its exit, per guest instruction,
/// with <see cref="ThpMode.Never"/> and <see cref="ThpMode.Always"/> as parameters of one run. Setup prints each mode's
/// EPT violations, EPT table pages, pages_2m, TLB misses and 2-D walks (the interpreter's soft TLB caches 4 KiB
/// translations whatever the EPT leaf size, so those two do not change).
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class ThpInterpreterBenchmarks
{
    private const ulong GuestBytes = 64UL << 20;
    private const string CommandLine = "mib=32";

    private ElfImage _image = null!;
    private Vm _vm = null!;
    private long _instructions;

    /// <summary>The host's THP mode.</summary>
    [Params(ThpMode.Never, ThpMode.Always)]
    public ThpMode Mode { get; set; }

    /// <summary>Loads memtest, runs it once and prints its MMU, TLB and walk counters.</summary>
    [GlobalSetup]
    public void LoadImage()
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Hypervisor.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        var path = Path.Combine(root ?? throw new InvalidOperationException("Hypervisor.sln not found above " + AppContext.BaseDirectory), "guests", "build", "memtest.elf");
        _image = ElfImage.Parse(File.ReadAllBytes(path));
        BootVm();
        var result = _vm.Run();
        if (result.GuestExitCode != 0 || !_vm.Console.Transcript().Contains("memtest: OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"memtest did not pass: '{_vm.Console.Transcript().Trim()}'");
        }

        _instructions = result.Cpu.Instructions;
        Console.WriteLine(
            $"// THP {Mode}: {result.Cpu.Instructions:N0} instructions, {result.Mmu.Faults:N0} EPT violations, {result.Mmu.TablePages:N0} EPT table pages, "
            + $"pages_2m {result.Mmu.Pages2M:N0}, pages_4k {result.Mmu.Pages4K:N0}, TLB misses {result.Tlb.Misses:N0}, 2-D walks {result.Walker.Walks:N0}");
        _vm.Dispose();
    }

    /// <summary>A fresh VM with memtest booted, for every iteration.</summary>
    [IterationSetup]
    public void BootVm()
    {
        _vm = new Vm(new VmOptions { MemoryBytes = GuestBytes, TransparentHugePages = Mode, CommandLine = CommandLine, Tier = Hypervisor.Vmm.Cpu.ExecutionTier.Interp }, new GuestConsole());
        _vm.Boot(_image);
    }

    /// <summary>Releases the iteration's VM.</summary>
    [IterationCleanup]
    public void DisposeVm() => _vm.Dispose();

    /// <summary>memtest mib=32, whole run; the mean divided by the instruction count printed in setup is ns per instruction.</summary>
    [Benchmark]
    public long Memtest() => _vm.Run().Cpu.Instructions == _instructions ? _instructions : throw new InvalidOperationException("memtest ran a different instruction count");
}

using System.Diagnostics;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Devices.Dma;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>
/// <c>hv demo dma</c>: the dmatest guest copies between its buffers through the DMA engine while a host thread keeps
/// invalidating them — <c>madvise(MADV_PAGEOUT)</c> to swap, KSM scanner steps over the buffers (equal pages merge),
/// <c>move_pages</c> to the other NUMA node, and munmap + MAP_FIXED re-mmap of a buffer with its contents restored — run
/// twice: with the registration cache on the user event channel (safe: zero stale DMAs, every copy verified by the
/// guest), then with the cache that never listens (unsafe: the engine's debug check counts the stale DMAs, the guest
/// finds the corruption).
/// </summary>
/// <remarks>Threads: the demo's thread is the pressure thread; the VM's vCPU runs on a thread of its own and starts
/// every copy (the doorbell write), which the engine makes on its own thread. A remap holds the vCPU's slice gate and
/// waits for the engine to be idle, so no guest instruction and no copy runs while the buffer is unmapped; swap-out, KSM and migration race the copies freely. Once the pressure begins, the vCPU
/// waits between two slices (64 Ki instructions) for the next strike, so every phase meets the pressure between its
/// copies however fast either thread runs.</remarks>
public sealed class DmaDemo
{
    private const long SliceInstructions = 64 * 1024;
    private const string Prefix = "dmatest: ";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan PacingWait = TimeSpan.FromMilliseconds(500);

    private readonly DmaDemoOptions _options;
    private string _stage = "starting";
    private Vm? _vm;

    /// <summary>Creates the demo.</summary>
    /// <exception cref="DmaDemoOptionsException">An option breaks its rule.</exception>
    public DmaDemo(DmaDemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>What runs now, in words.</summary>
    public string Stage => Volatile.Read(ref _stage);

    /// <summary>The DMA engine's counters of the phase in progress, or null between phases (for a live view).</summary>
    public DmaEngineCounters? LiveCounters => Volatile.Read(ref _vm)?.Dma?.Counters;

    /// <summary>Runs the safe phase, then the unsafe phase.</summary>
    /// <exception cref="FileNotFoundException">The dmatest guest image is missing.</exception>
    public DmaDemoResult Run()
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImageLocator.Find("dmatest", _options.GuestsFolder)));
        var safe = RunPhase(image, DmaCacheMode.Safe);
        var @unsafe = RunPhase(image, DmaCacheMode.Unsafe);
        Volatile.Write(ref _stage, "done");
        return new DmaDemoResult { Options = _options, Safe = safe, Unsafe = @unsafe };
    }

    private DmaDemoPhase RunPhase(ElfImage image, DmaCacheMode mode)
    {
        var c = CultureInfo.InvariantCulture;
        var name = mode == DmaCacheMode.Safe ? "safe" : "unsafe";
        var clock = Stopwatch.GetTimestamp();
        var guest = new GuestLines();
        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            NumaNodes = 2,
            VcpuNode = 0,

            // A limit as large as guest RAM: swap exists for MADV_PAGEOUT, and reclaim never has to run on its own.
            HostMemoryBytes = _options.GuestBytes,
            DmaCache = mode,
            CommandLine = string.Create(c, $"bufs={_options.Buffers} pages={_options.PagesPerBuffer} rounds={_options.Rounds} passes={_options.Passes} seed={_options.Seed}"),
        };

        var gate = new Lock();
        using var credits = new SemaphoreSlim(0);
        var pacing = false;
        using var vm = new Vm(options, new GuestConsole(new ConsoleLineWatcher(guest.OnLine)));
        vm.Boot(image);
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = SliceInstructions;
        vcpu.SliceGate = gate;

        // Pacing: once the host strikes, the guest runs at most one slice per strike, so a short run still meets the
        // pressure between its copies whatever the two threads' speeds. The wait is bounded: a stalled host never hangs the vCPU.
        vcpu.BetweenSlices = () =>
        {
            if (Volatile.Read(ref pacing))
            {
                credits.Wait(PacingWait);
            }
        };
        var host = vm.Host!;
        var process = vm.Process!;
        var before = (Swapped: host.Reclaim.Stats.Pswpout, Merges: host.Ksm.Stats.Merges, Migrated: host.Migration.Stats.PgmigrateSuccess);

        VmRunResult? run = null;
        Exception? failure = null;
        using var cancel = new CancellationTokenSource();
        var runner = new Thread(() =>
        {
            try
            {
                run = vm.Run(cancel.Token);
            }
            catch (Exception exception)
            {
                failure = exception;
            }
        })
        { IsBackground = true, Name = "dma-demo-vcpu0" };

        var pressure = new DmaPressure(process, host, gate, vm.Dma, new Random(_options.Seed), toleratesMemoryFailures: mode == DmaCacheMode.Unsafe);
        try
        {
            Volatile.Write(ref _vm, vm);
            runner.Start();
            SetStage($"{name} cache: the guest boots and lays out its buffers");
            var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
            while (guest.Buffers is null && runner.IsAlive && Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(PollInterval);
            }

            if (guest.Buffers is { } buffers)
            {
                SetStage($"{name} cache: the guest copies and verifies while the host swaps, merges, migrates and remaps its buffers");
                var ram = vm.GuestMemory!;
                pressure.Start(ram.Base + buffers.Start, _options.Buffers * 2, _options.PagesPerBuffer);
                Volatile.Write(ref pacing, true);
                while (runner.IsAlive && Stopwatch.GetTimestamp() < deadline)
                {
                    pressure.Strike();
                    credits.Release();
                    if (_options.PressureInterval > TimeSpan.Zero)
                    {
                        Thread.Sleep(_options.PressureInterval);
                    }
                }

                Volatile.Write(ref pacing, false);
                credits.Release();
            }

            if (!runner.Join(TimeSpan.FromSeconds(Math.Max(1, (deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency))))
            {
                cancel.Cancel();
                runner.Join();
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            SetStage($"{name} cache: audits");
            var audit = new List<string>();
            audit.AddRange(HostMmAuditor.Check(host).Select(v => "host: " + v));
            audit.AddRange(MmuAuditor.Check(vm.Mmu!).Select(v => "mmu: " + v));
            var exited = run!.Kind == VmStopKind.GuestExit;
            return new DmaDemoPhase
            {
                Mode = mode,
                GuestExitCode = exited ? run.GuestExitCode : null,
                Verdict = guest.Verdict ?? run.Detail,
                Mismatches = guest.Mismatches,
                Dma = vm.Dma!.Counters,
                Pressure = new DmaPressureCounts
                {
                    PageOuts = pressure.PageOuts,
                    PagesSwappedOut = host.Reclaim.Stats.Pswpout - before.Swapped,
                    KsmSteps = pressure.KsmSteps,
                    PagesMerged = host.Ksm.Stats.Merges - before.Merges,
                    Migrations = pressure.Migrations,
                    PagesMigrated = host.Migration.Stats.PgmigrateSuccess - before.Migrated,
                    Remaps = pressure.Remaps,
                    UnreadablePages = pressure.UnreadablePages,
                },
                AuditViolations = audit,
                Elapsed = Stopwatch.GetElapsedTime(clock),
            };
        }
        finally
        {
            if (runner.IsAlive)
            {
                cancel.Cancel();
                runner.Join();
            }

            Volatile.Write(ref _vm, null);
        }
    }

    private void SetStage(string stage) => Volatile.Write(ref _stage, stage);

    /// <summary>The guest's console as the demo reads it: the buffers' place, the mismatch lines and the verdict.</summary>
    private sealed class GuestLines
    {
        private readonly List<string> _mismatches = [];
        private string? _verdict;
        private (ulong Start, ulong End)? _buffers;

        public (ulong Start, ulong End)? Buffers
        {
            get
            {
                lock (_mismatches)
                {
                    return _buffers;
                }
            }
        }

        public string? Verdict => Volatile.Read(ref _verdict);

        public IReadOnlyList<string> Mismatches
        {
            get
            {
                lock (_mismatches)
                {
                    return [.. _mismatches];
                }
            }
        }

        public void OnLine(string line)
        {
            if (!line.StartsWith(Prefix, StringComparison.Ordinal))
            {
                return;
            }

            var text = line[Prefix.Length..];
            lock (_mismatches)
            {
                if (text.StartsWith("buffers at 0x", StringComparison.Ordinal))
                {
                    var range = text["buffers at ".Length..text.IndexOf(':', StringComparison.Ordinal)].Split('-');
                    _buffers = (ParseHex(range[0]), ParseHex(range[1]));
                }
                else if (text.StartsWith("mismatch", StringComparison.Ordinal))
                {
                    _mismatches.Add(line);
                }
                else
                {
                    Volatile.Write(ref _verdict, line);
                }
            }
        }

        private static ulong ParseHex(string text) =>
            ulong.Parse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
    }
}

using System.Diagnostics;
using System.Globalization;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>
/// <c>hv demo migrate --guest linux</c>: Debian's Linux kernel (built by <c>make -C guests linux</c>) boots on a two-node
/// host and its initramfs runs memtest; from /init's first line until memtest has finished, the host migrates all of
/// guest RAM node 0 → 1 → 0 … (one <c>MigrateRange</c> over the memslot per trip, audited at a quiescent point after
/// each), and Linux never notices: memtest's word-by-word check passes.
/// </summary>
public sealed partial class MigrateDemo
{
    /// <summary>Guest RAM Linux keeps for itself beyond memtest's region.</summary>
    public const ulong LinuxReserveBytes = 128UL << 20;

    /// <summary>Runs the Linux guest's memtest while its RAM migrates back and forth.</summary>
    /// <exception cref="FileNotFoundException">The Linux guest has not been built.</exception>
    public LinuxMigrateResult RunLinux()
    {
        var start = Stopwatch.GetTimestamp();
        var (kernel, initrd) = GuestImageLocator.FindLinux(_options.GuestsFolder);
        var mib = (int)((_options.GuestBytes - LinuxReserveBytes) >> 20);
        var lines = new List<string>();
        string? banner = null;
        var memtestStarted = 0;
        var memtestDone = 0;
        string? verdict = null;
        var console = new ConsoleLineWatcher(line =>
        {
            if (line.StartsWith("init: ", StringComparison.Ordinal) || line.StartsWith("memtest: ", StringComparison.Ordinal))
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }

            if (line.StartsWith("init: ", StringComparison.Ordinal))
            {
                Volatile.Write(ref memtestStarted, 1);
            }

            if (line.StartsWith("memtest: OK", StringComparison.Ordinal) || line.StartsWith("memtest: FAIL", StringComparison.Ordinal))
            {
                verdict = line;
                Volatile.Write(ref memtestDone, 1);
            }
            else if (banner is null && line.Contains("Linux version ", StringComparison.Ordinal))
            {
                banner = line[line.IndexOf("Linux version ", StringComparison.Ordinal)..];
            }
        });

        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            NumaNodes = 2,
            VcpuNode = 0,
            CommandLine = string.Create(CultureInfo.InvariantCulture, $"console=ttyS0 memtest.mib={mib}"),
            InitialRamDisk = InitialRamDisk.Load(initrd),
        };
        var gate = new Lock();
        using var vm = new Vm(options, new GuestConsole(console));
        vm.Boot(ElfImage.Parse(File.ReadAllBytes(kernel)));
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = SliceInstructions;
        vcpu.SliceGate = gate;

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
        { IsBackground = true, Name = "migrate-demo-linux-vcpu0" };

        var underMemtest = 0;
        try
        {
            Volatile.Write(ref _vm, vm);
            runner.Start();
            SetStage(string.Create(CultureInfo.InvariantCulture, $"Linux boots in {_options.GuestBytes >> 20} MiB on a two-node host"));
            var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
            while (Volatile.Read(ref memtestStarted) == 0 && vm.Progress().Kind == VmStopKind.Running && Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(PollInterval);
            }

            var migrator = vm.Host!.Migration;
            var process = vm.Process!;
            var ram = vm.GuestMemory!;
            for (var trip = 1; Volatile.Read(ref memtestDone) == 0 && vm.Progress().Kind == VmStopKind.Running && trip <= MigrateDemoOptions.MaxTrips; trip++)
            {
                var target = trip % 2;
                SetStage(string.Create(CultureInfo.InvariantCulture, $"trip {trip}: all guest RAM to node {target} while Linux's memtest runs"));
                var before = Counters.Of(vm);
                var runningBefore = Volatile.Read(ref memtestDone) == 0;
                var clock = Stopwatch.GetTimestamp();
                var summary = migrator.MigrateRange(process, ram.Base, ram.Base + ram.Size, target);
                var elapsed = Stopwatch.GetElapsedTime(clock);
                var running = runningBefore && Volatile.Read(ref memtestDone) == 0;
                var pages = AuditWhileRunning(vm, gate, string.Create(CultureInfo.InvariantCulture, $"after trip {trip}"));
                underMemtest += running ? 1 : 0;
                _trips.Add(Trip(trip, target, summary, elapsed, running, pages, before, Counters.Of(vm)));
                Interlocked.Increment(ref _tripsDone);
                Thread.Sleep(TripGap);
            }

            SetStage("Linux finishes and exits");
            if (!runner.Join(_options.PhaseTimeout))
            {
                cancel.Cancel();
                runner.Join();
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            Audit(vm, "after the guest exited");
            string[] userland;
            lock (lines)
            {
                userland = [.. lines];
            }

            SetStage("done");
            return new LinuxMigrateResult
            {
                GuestBytes = _options.GuestBytes,
                MemtestMib = mib,
                Trips = [.. _trips],
                Migration = vm.Host.Migration.Stats,
                Stop = run!.Kind,
                GuestExitCode = run.GuestExitCode,
                GuestVerdict = verdict ?? run.Detail,
                UserlandLines = userland,
                Banner = banner,
                Audits = Audits,
                AuditViolations = [.. _violations],
                TripsUnderMemtest = underMemtest,
                Elapsed = Stopwatch.GetElapsedTime(start),
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

    /// <summary>Audits between two interpreter slices (the vCPU's slice gate held), or at once when the VM has stopped.</summary>
    private long[] AuditWhileRunning(Vm vm, Lock gate, string when)
    {
        while (true)
        {
            if (vm.Progress().Kind != VmStopKind.Running)
            {
                return Audit(vm, when);
            }

            if (gate.TryEnter(PollInterval))
            {
                try
                {
                    return Audit(vm, when);
                }
                finally
                {
                    gate.Exit();
                }
            }
        }
    }
}

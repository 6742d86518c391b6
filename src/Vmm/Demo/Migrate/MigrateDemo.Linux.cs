using System.Diagnostics;
using System.Globalization;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>
/// <c>hv demo migrate --guest linux</c>: Debian's Linux kernel (built by <c>make -C guests linux</c>) boots on a two-node
/// host and its initramfs runs memtest; from the kernel's banner until memtest has finished, the host migrates all of
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
        var linux = new LinuxGuestConsole();
        var console = new ConsoleLineWatcher(linux.OnLine);

        var options = new VmOptions
        {
            MemoryBytes = _options.GuestBytes,
            NumaNodes = 2,
            VcpuNode = 0,
            CommandLine = string.Create(CultureInfo.InvariantCulture, $"console=ttyS0 memtest.mib={mib}"),
            InitialRamDisk = InitialRamDisk.Load(initrd),
            Trace = _options.Trace,
        };
        var gate = new Lock();
        using var vm = new Vm(options, new GuestConsole(console));
        vm.Boot(ElfImage.Parse(File.ReadAllBytes(kernel)));
        using var sampler = TraceSampler.Start(_options.Trace, vm);
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

        var whileRunning = 0;
        try
        {
            Volatile.Write(ref _vm, vm);
            runner.Start();
            SetStage(string.Create(CultureInfo.InvariantCulture, $"Linux boots in {_options.GuestBytes >> 20} MiB on a two-node host"));
            var deadline = Stopwatch.GetTimestamp() + (long)(_options.PhaseTimeout.TotalSeconds * Stopwatch.Frequency);
            while (linux.Banner is null && vm.Progress().Kind == VmStopKind.Running && Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(PollInterval);
            }

            var migrator = vm.Host!.Migration;
            var process = vm.Process!;
            var ram = vm.GuestMemory!;
            for (var trip = 1; linux.Verdict is null && vm.Progress().Kind == VmStopKind.Running && trip <= MigrateDemoOptions.MaxTrips; trip++)
            {
                var target = trip % 2;
                SetStage(string.Create(CultureInfo.InvariantCulture, $"trip {trip}: all guest RAM to node {target} while Linux runs"));
                var before = Counters.Of(vm);
                var runningBefore = linux.Verdict is null;
                var clock = Stopwatch.GetTimestamp();
                var summary = migrator.MigrateRange(process, ram.Base, ram.Base + ram.Size, target);
                var elapsed = Stopwatch.GetElapsedTime(clock);
                var running = runningBefore && linux.Verdict is null;
                var pages = AuditQuiescent(vm, static () => false, gate, string.Create(CultureInfo.InvariantCulture, $"after trip {trip}"));
                whileRunning += running ? 1 : 0;
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
            SetStage("done");
            return new LinuxMigrateResult
            {
                GuestBytes = _options.GuestBytes,
                MemtestMib = mib,
                Trips = [.. _trips],
                Migration = vm.Host.Migration.Stats,
                Stop = run!.Kind,
                GuestExitCode = run.GuestExitCode,
                GuestVerdict = linux.Verdict ?? run.Detail,
                UserlandLines = linux.UserlandLines,
                Banner = linux.Banner,
                Audits = Audits,
                AuditViolations = [.. _violations],
                TripsWhileLinuxRan = whileRunning,
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
}

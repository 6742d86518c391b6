using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// Every case of <c>guests/tests/expected.txt</c> boots on a <see cref="Vm"/> (the emulated accelerator) and prints
/// its text with QEMU's exit status; afterwards the EPT is coherent with the host (<see cref="MmuAuditor"/>).
/// The cases that take more than about 2 s here are the explicit Stress test.
/// </summary>
public sealed class VmGuestTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    // (guest, cmdline) of the cases that run for more than 2 s on the interpreter (measured: 6–20 s each, the default
    // workingset about 2.4 s; the default sieve and memtest take about 1.8 s and stay in the quick set).
    private static readonly HashSet<(string Guest, string CommandLine)> SlowCases =
    [
        ("sieve", "n=10000000"),
        ("memtest", "mib=16 seed=7"),
        ("ksm", string.Empty),
        ("ksm", "pages=4096 kinds=7 every=5"),
        ("workingset", string.Empty),
    ];

    [TestCaseSource(nameof(QuickCases))]
    [Category(TestCategories.Guest)]
    public void QuickGuestPrintsItsExpectedTextAndStatus(GuestCase guestCase) => BootAndCheck(guestCase);

    [Explicit("runs the long guests: about 45 s on the interpreter")]
    [Category(TestCategories.Stress)]
    [TestCaseSource(nameof(LongCases))]
    [Category(TestCategories.Guest)]
    public void LongGuestPrintsItsExpectedTextAndStatus(GuestCase guestCase) => BootAndCheck(guestCase);

    [Test]
    public void ExpectedCasesIncludeEverySampleGuest()
    {
        var guests = GuestImages.ExpectedCases().Select(c => c.Guest).ToHashSet();

        Assert.That(guests, Is.SupersetOf(new[] { "hello", "sieve", "memtest", "pagetables", "ksm", "workingset", "timer", "sse", "smp" }));
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TimerGuestTakesEveryTimerModeIncludingTscDeadlineOnTheVirtualClock()
    {
        var (result, output, audit) = Boot("timer", string.Empty);
        var (again, outputAgain, _) = Boot("timer", string.Empty);
        var (_, verbose, _) = Boot("timer", "verbose=1");

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail + "\n" + output);
            Assert.That(result.GuestExitCode, Is.Zero, output);
            Assert.That(output, Is.EqualTo(
                "timer: APIC version 0x50014, enabled, spurious vector 0xff\n" +
                "timer: one-shot, divide 128, count 100000: 1 interrupt, current count 0 after it\n" +
                "timer: periodic, divide 16, count 50000: 5 interrupts, TSC increasing: yes\n" +
                "timer: OK\n"), "the TSC-deadline phase prints only its failures");
            Assert.That(result.Cpu.InterruptsDelivered, Is.EqualTo(9), "1 one-shot + 5 periodic + 3 TSC-deadline");
            Assert.That(verbose, Does.Contain("timer: tsc-deadline: 3 interrupts, 3 at or after their deadline\n"));
            Assert.That(result.Cpu.HaltedTicks, Is.GreaterThan(100_000L * 128), "the waits were skipped, not executed");
            Assert.That(again.Cpu.Instructions, Is.EqualTo(result.Cpu.Instructions), "the virtual clock makes runs reproducible");
            Assert.That(again.Cpu.HaltedTicks, Is.EqualTo(result.Cpu.HaltedTicks));
            Assert.That(outputAgain, Is.EqualTo(output));
            Assert.That(audit, Is.Empty);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void PagetablesRoundsPrintTheSameTranscriptAndFlushTheSameOnBothTiers()
    {
        // Compiled synchronously at the default threshold, so the fill and verify loops of every round after the
        // first run as compiled blocks, with the CR3 writes and INVLPGs between them.
        var (interp, interpOutput, interpAudit) = Boot("pagetables", "rounds=3 ad=1", tier: ExecutionTier.Interp);
        var (jit, jitOutput, jitAudit) = Boot("pagetables", "rounds=3 ad=1", tier: ExecutionTier.Jit, compile: JitCompileMode.Sync);
        const string Transcript =
            "pagetables: 3 rounds, tables at 0x11f000, frames at 0x107000\n" +
            "pagetables: 3 rounds: 98304 words verified, 9 CR3 loads, 3 INVLPGs, 0 failed checks\n" +
            "pagetables: OK\n";

        Assert.Multiple(() =>
        {
            Assert.That(interpOutput, Is.EqualTo(Transcript), "the interpreter's transcript");
            Assert.That(jitOutput, Is.EqualTo(Transcript), "the JIT tier's transcript");
            Assert.That(jit.GuestExitCode, Is.Zero);
            Assert.That(interp.GuestExitCode, Is.Zero);
            Assert.That(jit.Cpu.Instructions, Is.EqualTo(interp.Cpu.Instructions), "both tiers retire the same instructions");
            Assert.That(interp.Cpu.Jit.Instructions, Is.Zero);
            Assert.That((double)jit.Cpu.Jit.Instructions / jit.Cpu.Instructions, Is.GreaterThan(0.5), "most of the rounds ran compiled");
            // The boot's own CR3 load, then 3 per round; one INVLPG per round; on either tier every one reaches the TLB.
            Assert.That(jit.Tlb.NonGlobalFlushes, Is.EqualTo(interp.Tlb.NonGlobalFlushes).And.EqualTo(1 + (3 * 3)));
            Assert.That(jit.Tlb.PageFlushes, Is.EqualTo(interp.Tlb.PageFlushes).And.EqualTo(3));
            Assert.That(interpAudit, Is.Empty);
            Assert.That(jitAudit, Is.Empty);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void HelloGivesTheGuestCodeAndQemusStatusAndTheMmuCounters()
    {
        var (result, output, audit) = Boot("hello", string.Empty);

        Assert.Multiple(() =>
        {
            Assert.That(output, Is.EqualTo("Hello from the guest\n"));
            Assert.That(result.GuestExitCode, Is.Zero);
            Assert.That(result.ExitStatus, Is.EqualTo(1));
            Assert.That(result.Cpu.Instructions, Is.Positive);
            Assert.That(result.Mmu.Faults, Is.Positive, "every guest page is reached through an EPT violation first");
            Assert.That(result.Mmu.PresentSptes, Is.EqualTo(result.Mmu.Installs - result.Mmu.Zapped));
            Assert.That(result.Tlb.Hits, Is.Positive);
            Assert.That(result.TlbHitRate, Is.InRange(0.0, 1.0));
            Assert.That(result.Cpu.DecodeCacheHits, Is.Positive);
            Assert.That(result.Elapsed, Is.GreaterThan(TimeSpan.Zero));
            Assert.That(audit, Is.Empty);
        });
    }

    private static IEnumerable<TestCaseData> QuickCases() => Cases(slow: false);

    private static IEnumerable<TestCaseData> LongCases() => Cases(slow: true);

    private static IEnumerable<TestCaseData> Cases(bool slow)
    {
        var cases = GuestImages.ExpectedCases();
        if (cases.Count == 0)
        {
            yield return new TestCaseData(new GuestCase("none", string.Empty, 1, string.Empty))
                .SetArgDisplayNames("expected.txt")
                .Ignore("guests/tests/expected.txt was not found above the test assembly");
            yield break;
        }

        foreach (var guestCase in cases.Where(c => SlowCases.Contains((c.Guest, c.CommandLine)) == slow))
        {
            yield return new TestCaseData(guestCase).SetArgDisplayNames(guestCase.ToString());
        }
    }

    private static void BootAndCheck(GuestCase guestCase)
    {
        var (result, output, audit) = Boot(guestCase.Guest, guestCase.CommandLine, guestCase.Cpus);
        TestContext.Out.WriteLine($"{guestCase}: {result.Kind}, status {result.ExitStatus}, {result.Cpu.Instructions:N0} instructions in {result.Elapsed.TotalMilliseconds:N0} ms");

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail + "\n" + output);
            Assert.That(result.ExitStatus, Is.EqualTo(guestCase.HostExitStatus), output);
            Assert.That(result.GuestExitCode, Is.EqualTo(guestCase.GuestExitCode));
            Assert.That(output, Does.Contain(guestCase.ExpectedText));
            Assert.That(audit, Is.Empty, "MmuAuditor after the run");
        });
    }

    private static (VmRunResult Result, string Output, IReadOnlyList<string> Audit) Boot(
        string guest, string commandLine, int cpus = 1, ExecutionTier tier = ExecutionTier.Jit, JitCompileMode compile = JitCompileMode.Background)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath(guest)));
        var console = new GuestConsole();
        var options = new VmOptions { CommandLine = commandLine, Timeout = Limit, CpuCount = cpus, Tier = tier, JitCompile = compile };
        using var vm = new Vm(options, console);
        vm.Boot(image);
        var result = vm.Run();
        return (result, console.Transcript(), MmuAuditor.Check(vm.Mmu!));
    }
}

using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Tests.Boot;
using Hypervisor.Vmm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run</c>: the guest's console and the closing report on standard output, the guest's own exit code,
/// one error line (never a stack trace) for a missing or bad image, usage errors for bad option values, the
/// limits, a triple fault's report under both accelerators, and the help (exit codes, the memory default as a size).
/// </summary>
public sealed class RunCommandTests
{
    private string _directory = string.Empty;

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "hv-run-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    [Category(TestCategories.Guest)]
    public void TimerGuestExitsZeroAndTheReportCountsItsInterrupts()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("timer"), "--plain");
        var row = result.StdoutLines.SingleOrDefault(l => l.StartsWith("interrupts ", StringComparison.Ordinal));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("timer: OK"));
            Assert.That(row, Is.Not.Null, result.Stdout);
            Assert.That(row, Does.Match(@"^interrupts\s+9\s+NMIs and APIC interrupts delivered through the IDT; 9 HLTs woken, [0-9,]+ TSC ticks skipped halted"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void SmpGuestExitsZeroAndTheReportCountsHaltsWokenByIpisAndShootdowns()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("smp"), "--smp", "2", "--cmdline", "rounds=20 mib=1", "--plain");
        var interrupts = result.StdoutLines.SingleOrDefault(l => l.StartsWith("interrupts ", StringComparison.Ordinal));
        var shootdowns = result.StdoutLines.SingleOrDefault(l => l.StartsWith("TLB shootdowns ", StringComparison.Ordinal));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("smp: OK"));
            Assert.That(interrupts, Does.Match(@"; [1-9][0-9,]* halts slept until another vCPU, [1-9][0-9,]* woken by an IPI or start-up$"), result.Stdout);
            Assert.That(shootdowns, Does.Match(@"^TLB shootdowns\s+[0-9,]+\s+[0-9,]+ per second; "), result.Stdout);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void HelloPrintsItsGreetingThenTheReportAndExitsZero()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.StdoutLines[0], Is.EqualTo("Hello from the guest"));
            Assert.That(result.StdoutLines[1], Is.EqualTo("hv run hello.elf: the guest exited with code 0, exit status 0"));
            Assert.That(result.Stdout, Does.Contain("QEMU's exit status would be (0<<1)|1 = 1"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void HostForksUnderTheGuestAreCountedAndTheGuestStillPasses()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--cmdline", "mib=2", "--host-fork-every", "1");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memtest: OK"));
            Assert.That(Row(result.StdoutLines, "host forks"), Does.Match(@"^host forks\s+[1-9][0-9,]*\s"));
            Assert.That(Row(result.StdoutLines, "sptes zapped"), Does.Match(@"^sptes zapped\s+[1-9][0-9,]*\s"), "forks zap the writable sptes");
        });
    }

    [TestCase("--max-instructions", "1000")]
    [TestCase("--host-fork-every", "5")]
    [TestCase("--tier", "Interp")]
    [TestCase("--jit-threshold", "5")]
    [Category(TestCategories.Kvm)]
    public void EmulatedOnlyOptionsAreRefusedUnderKvm(string option, string value)
    {
        RequireKvm();
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--accel", "kvm", option, value);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.Stderr, Does.StartWith($"hv: error: {option} needs --accel emulated"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void BothTiersRunSieveToTheSameTranscriptAndCountAndTheReportSaysWhichRan()
    {
        var interpreted = Hv.Run("run", GuestImages.ImagePath("sieve"), "--tier", "Interp");
        var compiled = Hv.Run("run", GuestImages.ImagePath("sieve"), "--tier", "Jit", "--jit-compile", "Sync");
        var background = Hv.Run("run", GuestImages.ImagePath("sieve"));

        Assert.Multiple(() =>
        {
            Assert.That(interpreted.ExitCode, Is.Zero, interpreted.Stdout + interpreted.Stderr);
            Assert.That(compiled.ExitCode, Is.Zero, compiled.Stdout + compiled.Stderr);
            Assert.That(background.ExitCode, Is.Zero, background.Stdout + background.Stderr);
            Assert.That(compiled.Stdout, Does.Contain("sieve: 78498 primes below 1000000"));
            Assert.That(background.Stdout, Does.Contain("sieve: 78498 primes below 1000000"));
            Assert.That(Figure(compiled.StdoutLines, "instructions"), Is.EqualTo(Figure(interpreted.StdoutLines, "instructions")).And.Not.Empty, "the retired count is exact under both tiers");
            Assert.That(Figure(background.StdoutLines, "instructions"), Is.EqualTo(Figure(interpreted.StdoutLines, "instructions")),
                "the retired count does not depend on when the background compilations finish");
            Assert.That(Row(background.StdoutLines, "tier"), Does.Match(@"^tier\s+jit .*--jit-compile background\)"), "background compilation is the default");
            Assert.That(Row(interpreted.StdoutLines, "tier"), Does.Match(@"^tier\s+interp\s"));
            Assert.That(Row(compiled.StdoutLines, "tier"), Does.Match(@"^tier\s+jit (9\d|100)\.\d\d %\s+of instructions retired in compiled code.* [1-9][0-9]* blocks compiled"),
                "sieve spends nearly all its time in a few hot loops");
        });
    }

    [Test]
    public void TheJitThresholdReachesTheVcpuAndTheReportShowsItWithTheCompileCostPerBlock()
    {
        var eager = Hv.Run("run", GuestImages.ImagePath("hello"), "--jit-threshold", "1", "--jit-compile", "Sync");
        var lazy = Hv.Run("run", GuestImages.ImagePath("hello"), "--jit-threshold", "100000");

        Assert.Multiple(() =>
        {
            Assert.That(eager.ExitCode, Is.Zero, eager.Stdout + eager.Stderr);
            Assert.That(lazy.ExitCode, Is.Zero, lazy.Stdout + lazy.Stderr);
            Assert.That(Row(eager.StdoutLines, "tier"), Does.Match(@" [1-9][0-9,]* blocks compiled \(--jit-threshold 1, --jit-compile sync\) in [0-9.,]+ ms, mean [0-9.,]+ µs per block"),
                "at 1 every block hello runs is compiled on its first run");
            Assert.That(Row(lazy.StdoutLines, "tier"), Does.Match(@"^tier\s+jit 0\.00 %.* 0 blocks compiled \(--jit-threshold 100000, --jit-compile background\)"),
                "hello runs no block 100 000 times");
            Assert.That(Figure(eager.StdoutLines, "instructions"), Is.EqualTo(Figure(lazy.StdoutLines, "instructions")).And.Not.Empty);
        });
    }

    [Test]
    public void TheInterpretedFormsProfileIsOffByDefaultAndCountsWhatCompiledBlocksLeaveToTheInterpreterWhenSwitchedOn()
    {
        string[] args = ["run", GuestImages.ImagePath("hello"), "--plain", "--jit-threshold", "1", "--jit-compile", "sync"];
        var profiled = Hv.RunProcess(new Dictionary<string, string> { [Hypervisor.Vmm.Cpu.Jit.BlockCompiler.ProfileVariable] = "1" }, args);
        var plain = Hv.Run(args);
        var row = Row(profiled.StdoutLines, "interpreted in blocks");

        Assert.Multiple(() =>
        {
            Assert.That(profiled.ExitCode, Is.Zero, profiled.Stdout + profiled.Stderr);
            Assert.That(plain.ExitCode, Is.Zero, plain.Stdout + plain.Stderr);
            Assert.That(row, Does.Match(@"^interpreted in blocks\s+[1-9][0-9,]*\s+by form \(HV_JIT_INTERPRETED=1\): "), profiled.Stdout);
            Assert.That(row, Does.Contain("out_imm8_al "), "hello's console writes are port I/O, which compiled blocks hand to the interpreter");
            Assert.That(plain.Stdout, Does.Not.Contain("interpreted in blocks"), "off, compiled blocks count nothing");
            Assert.That(Figure(profiled.StdoutLines, "instructions"), Is.EqualTo(Figure(plain.StdoutLines, "instructions")).And.Not.Empty,
                "counting changes no guest behaviour");
        });
    }

    [TestCase("0")]
    [TestCase("-5")]
    [TestCase("often")]
    public void AJitThresholdBelowOneIsAUsageError(string value)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--jit-threshold", value);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.StartWith("hv: error: --jit-threshold expects a whole number from 1").And.Contain($"'{value}'"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void AJitCompileModeWithTheInterpreterTierIsAUsageError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--tier", "Interp", "--jit-compile", "Sync");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.StartWith("hv: error: --jit-compile Sync needs --accel emulated and --tier jit"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void AJitThresholdWithTheInterpreterTierIsAUsageError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--tier", "Interp", "--jit-threshold", "5");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.StartWith("hv: error: --jit-threshold 5 needs --tier jit"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void AnUnknownTierIsAUsageError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--tier", "fast");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.Contain("--tier").And.Contain("fast"));
        });
    }

    [Test]
    public void AHostForkIntervalOutsideItsRangeIsAUsageError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--host-fork-every", "-1");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.Stderr, Does.StartWith("hv: error: --host-fork-every expects a whole number from 0 to 60000, got '-1'"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheReportShowsWhatTheInterpreterAndTheMmuDid()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"));
        var rows = result.StdoutLines;

        Assert.Multiple(() =>
        {
            foreach (var figure in new[] { "instructions", "MIPS", "EPT violations", "sptes present", "sptes zapped", "TLB hit rate", "decode-cache hit rate" })
            {
                Assert.That(rows.Any(r => r.StartsWith(figure + " ", StringComparison.Ordinal)), Is.True, $"a '{figure}' row in\n{result.Stdout}");
            }

            Assert.That(Row(rows, "instructions"), Does.Match(@"^instructions\s+[1-9][0-9,]*\s"));
            Assert.That(Row(rows, "EPT violations"), Does.Match(@"^EPT violations\s+[1-9][0-9,]*\s+[1-9][0-9,]* sptes installed"));
            Assert.That(Row(rows, "TLB hit rate"), Does.Match(@"^TLB hit rate\s+[0-9]+\.[0-9]{2} %"));
            Assert.That(Row(rows, "decode-cache hit rate"), Does.Match(@"^decode-cache hit rate\s+[0-9]+\.[0-9]{2} %"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheCommandLineReachesTheGuest()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--cmdline", "x=1 y=0x2");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines, Does.Contain("cmdline: x=1 y=0x2"));
            Assert.That(result.Stdout, Does.Contain("cmdline \"x=1 y=0x2\""), "the report's boot row");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void AGuestFailureCodeIsTheExitCode()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("sieve"), "--cmdline", "n=999999999");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("above the limit"));
            Assert.That(result.Stdout, Does.Contain("the guest exited with code 2, exit status 2"));
            Assert.That(result.Stdout, Does.Contain("(2<<1)|1 = 5"));
        });
    }

    [TestCase((byte)0)]
    [TestCase((byte)7)]
    [TestCase((byte)200)]
    public void TheDebugExitValueIsTheExitCode(byte value)
    {
        var result = Hv.Run("run", Write("exit.elf", TestImages.DebugExit(value)));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(value), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain($"the guest exited with code {value}, exit status {value}"));
            Assert.That(result.Stdout, Does.Contain($"({value}<<1)|1 = {(value << 1) | 1}"));
        });
    }

    [Test]
    public void PowerOffExitsZero()
    {
        var result = Hv.Run("run", Write("off.elf", TestImages.PowerOff()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("ACPI power-off"));
        });
    }

    [Test]
    public void KeyboardControllerResetStopsTheVmWithStatusZero()
    {
        var result = Hv.Run("run", Write("reset.elf", TestImages.KeyboardReset()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("the guest reset the machine"));
            Assert.That(result.Stdout, Does.Contain("reset by i8042"));
        });
    }

    [Test]
    public void PitCounter2RunsOnTheBootVcpusVirtualClock()
    {
        var result = Hv.Run("run", Write("pit.elf", TestImages.PitChannel2Timing()));

        Assert.That(result.ExitCode, Is.EqualTo(10), "11 932 ticks of 1.193182 MHz are 10 ms: 10 million TSC ticks at one per instruction; " + result.Stdout + result.Stderr);
    }

    [Test]
    public void AHaltNothingCanWakeExitsFive()
    {
        var result = Hv.Run("run", Write("hlt.elf", TestImages.Halt()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(5), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("hv run hlt.elf: the guest halted with nothing to wake it, exit status 5"));
        });
    }

    [Test]
    public void AMissingImageIsOneErrorLine()
    {
        var missing = Path.Combine(_directory, "missing.elf");

        var result = Hv.Run("run", missing);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.StartWith($"hv: error: image '{missing}' does not exist"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [TestCase("truncated", "is truncated")]
    [TestCase("bad-magic", "is neither ELF nor a Linux bzImage: it must start with 0x7f 'E' 'L' 'F' or have \"HdrS\" at 0x202")]
    [TestCase("outside-ram", "lies outside guest RAM")]
    [TestCase("overlapping", "overlap: PT_LOAD segments must not share physical addresses")]
    [TestCase("entry-outside", "lies outside every PT_LOAD segment")]
    public void ABadImageIsOneErrorLineNamingTheRule(string kind, string rule)
    {
        var result = Hv.Run("run", Write(kind + ".elf", BadImage(kind)));

        AssertOneErrorLine(result, rule);
    }

    [Test]
    public void ABzImageBootsThroughTheLinuxProtocol()
    {
        // Exit code 0 only if the zero page in RSI carries the loader's type and the kernel's header, the command line
        // is where cmd_line_ptr says, and CS/DS are __BOOT_CS/__BOOT_DS; else the number of the failed check.
        var image = TestImages.LinuxBzImage(a =>
        {
            var exit = a.CreateLabel();
            a.mov(al, 1);
            a.cmp(__byte_ptr[rsi + 0x210], 0xFF);
            a.jne(exit);
            a.mov(al, 2);
            a.cmp(__dword_ptr[rsi + 0x202], 0x5372_6448);
            a.jne(exit);
            a.mov(al, 3);
            a.mov(ecx, __dword_ptr[rsi + 0x228]);
            a.cmp(__byte_ptr[rcx], (byte)'x');
            a.jne(exit);
            a.mov(al, 4);
            a.mov(cx, cs);
            a.cmp(cx, 0x10);
            a.jne(exit);
            a.mov(al, 5);
            a.mov(cx, ds);
            a.cmp(cx, 0x18);
            a.jne(exit);
            a.mov(al, 0);
            a.Label(ref exit);
            a.@out(0xF4, al);
            a.hlt();
        });

        var result = Hv.Run("run", Write("vmlinuz", image), "--cmdline", "x=1", "--plain");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines.SingleOrDefault(l => l.StartsWith("boot ", StringComparison.Ordinal)), Does.Match(@"^boot\s+Linux\s"), result.Stdout);
        });
    }

    [Test]
    public void AnOldBzImageIsOneErrorLineNamingTheRule()
    {
        var result = Hv.Run("run", Write("old-vmlinuz", new BzImageBuilder { Version = 0x0206 }.Build()));

        AssertOneErrorLine(result, "boot protocol 2.6 (0x0206) is too old: the 64-bit entry needs 2.12");
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ATooLongCommandLineIsOneErrorLine()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--cmdline", new string('a', 5000));

        AssertOneErrorLine(result, "command line of 5000 bytes is too long");
    }

    [Test]
    [Category(TestCategories.Kvm)]
    public void AnImageOutsideRamIsOneErrorLineOnKvmToo()
    {
        RequireKvm();

        var result = Hv.Run("run", "--accel", "kvm", Write("outside-ram.elf", BadImage("outside-ram")));

        AssertOneErrorLine(result, "lies outside guest RAM");
    }

    [TestCase("0")]
    [TestCase("1M")]
    [TestCase("5G")]
    [TestCase("abc")]
    [TestCase("4097K")]
    [TestCase("3073")]
    [TestCase("2097153B")]
    public void ABadMemorySizeIsAUsageError(string value)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--mem", value);

        AssertUsageError(result, $"--mem expects a size from 2M to 3G in whole 4K pages (a bare number is MiB), got '{value}'");
    }

    [TestCase("--smp", "0")]
    [TestCase("--smp", "65")]
    [TestCase("--timeout", "-1")]
    [TestCase("--max-instructions", "-1")]
    [TestCase("--accel", "hvf")]
    public void ABadOptionValueIsAUsageError(string option, string value)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), option, value);

        AssertUsageError(result, option);
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheInstructionLimitStopsTheGuestWithExitFour()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("sieve"), "--max-instructions", "1000");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(4), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("hv run sieve.elf: instruction limit reached, exit status 4"));
            Assert.That(result.Stdout, Does.Contain("stopped at the instruction limit of 1000 at RIP 0x"));
            Assert.That(result.Stdout, Does.Not.Contain("sieve: "), "the guest never got to print");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheTimeoutStopsTheGuestWithExitFour()
    {
        // A thousand rounds of n=10^7 take minutes at any speed the interpreter reaches, so the 1 s timeout always ends the run.
        var result = Hv.Run("run", GuestImages.ImagePath("sieve"), "--cmdline", "n=10000000 rounds=1000", "--timeout", "1");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(4), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("hv run sieve.elf: timed out, exit status 4"));
            Assert.That(result.Stdout, Does.Contain("stopped after the timeout of 1 s"));
            Assert.That(result.Stdout, Does.Not.Contain("664579"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void PlainOutputOnATerminalHasNoEscapes()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = Program.Run(["run", "--plain", GuestImages.ImagePath("hello")], new CliContext(stdout, stderr, isTerminal: true));

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, stdout + stderr.ToString());
            Assert.That(stdout.ToString(), Does.Contain("hv run hello.elf: the guest exited with code 0"));
            Assert.That(stdout.ToString(), Does.Not.Contain("\u001b"));
        });
    }

    [Test]
    public void ATripleFaultIsAReportWithTheRegistersAndExitThree()
    {
        var result = Hv.Run("run", Write("triple.elf", TestImages.TripleFault()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(3), result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run triple.elf: the guest triple-faulted, exit status 3"));
            Assert.That(result.Stdout, Does.Contain("triple fault: InvalidOpcode"));
            Assert.That(result.Stdout, Does.Contain($"RAX={TestImages.RaxMarker:x16}"));
            Assert.That(result.Stdout, Does.Match(@"RIP=[0-9a-f]{16} RFLAGS="));
            Assert.That(result.Stdout, Does.Contain("instructions"), "the counters follow");
        });
    }

    [Test]
    public void AGuestPagingModeTheInterpreterDoesNotModelIsAnInternalErrorReportWithTheRegistersAndExitThree()
    {
        var result = Hv.Run("run", Write("paging.elf", TestImages.EnableFiveLevelPaging()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(3), result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty, "a guest that breaks its machine is a report, not an hv error");
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run paging.elf: the VM could not continue, exit status 3"));
            Assert.That(result.Stdout, Does.Contain("guest paging mode LongMode5Level "));
            Assert.That(result.Stdout, Does.Contain($"RBX={TestImages.RaxMarker & 0xFFFF_FFFF:x16}"), "the registers follow the detail");
            Assert.That(result.Stdout, Does.Match(@"RIP=[0-9a-f]{16} RFLAGS=[0-9a-f]{8} CPL=0 mode=32-bit"));
        });
    }

    [Test]
    [Category(TestCategories.Kvm)]
    public void ATripleFaultOnKvmIsAReportWithTheRegistersAndExitThree()
    {
        RequireKvm();

        var result = Hv.Run("run", "--accel", "kvm", "--timeout", "60", Write("triple.elf", TestImages.TripleFault()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(3), result.Stdout + result.Stderr);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run triple.elf --accel kvm: the guest triple-faulted (KVM_EXIT_SHUTDOWN), exit status 3"));
            Assert.That(result.Stdout, Does.Contain("KVM_EXIT_SHUTDOWN"));
            Assert.That(result.Stdout, Does.Contain($"RAX={TestImages.RaxMarker:x16}"));
            Assert.That(result.Stdout, Does.Match(@"RIP=[0-9a-f]{16} RFLAGS="));
            Assert.That(result.Stdout, Does.Match(@"last RIP\s+0x[0-9a-f]+"));
        });
    }

    [Test]
    [Category(TestCategories.Kvm)]
    public void KvmReturnsTheGuestsCodeToo()
    {
        RequireKvm();

        var result = Hv.Run("run", "--accel", "kvm", "--timeout", "60", Write("exit.elf", TestImages.DebugExit(9)));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(9), result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run exit.elf --accel kvm: the guest exited with code 9, exit status 9"));
            Assert.That(result.Stdout, Does.Contain("(9<<1)|1 = 19"));
        });
    }

    [Test]
    [Category(TestCategories.Kvm)]
    public void KvmTimeoutExitsFour()
    {
        RequireKvm();

        var result = Hv.Run("run", "--accel", "kvm", "--timeout", "1", Write("spin.elf", TestImages.Spin()));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(4), result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines[0], Is.EqualTo("hv run spin.elf --accel kvm: timed out, exit status 4"));
        });
    }

    [Test]
    public void TheHelpDocumentsTheExitCodes()
    {
        var result = Hv.Run("run", "--help");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stdout, Does.Contain("the value it wrote to the debug-exit port 0xF4"));
            Assert.That(result.Stdout, Does.Contain("(value<<1)|1"));
            Assert.That(result.Stdout, Does.Contain("3 when the guest triple-faults"));
            Assert.That(result.Stdout, Does.Contain("70 for an internal error"));
        });
    }

    [Test]
    public void TheHelpShowsTheMemoryDefaultAsASizeNotBytes()
    {
        var result = Hv.Run("run", "--help");

        // Whitespace collapsed: help may wrap the description column on a narrow terminal.
        var help = string.Join(' ', result.Stdout.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(help, Does.Match(@"-m, --mem <SIZE> Guest RAM: [^\[]*\[default: 128M\]"), result.Stdout);
            Assert.That(result.Stdout, Does.Not.Contain("134217728"));
            Assert.That(ByteSize.TryParse("128M", out var size) && size.Bytes == RunCommand.DefaultMemoryBytes, Is.True, "the shown default is the default");
        });
    }

    [TestCase("512")]
    [TestCase("512M")]
    [TestCase("524288K")]
    [TestCase("536870912B")]
    [Category(TestCategories.Guest)]
    public void ABareMemorySizeIsMibAsInQemu(string value)
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "-m", value);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(Row(result.StdoutLines, "boot"), Does.Contain("512 MiB"));
        });
    }

    private static byte[] BadImage(string kind) => kind switch
    {
        "truncated" => TestImages.Truncated(),
        "bad-magic" => TestImages.BadMagic(),
        "outside-ram" => TestImages.SegmentOutsideRam(),
        "overlapping" => TestImages.OverlappingSegments(),
        "entry-outside" => TestImages.EntryOutsideSegments(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "no such bad image"),
    };

    private static void AssertOneErrorLine(CliResult result, string rule)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.Stderr, Does.StartWith("hv: error: "));
            Assert.That(result.Stderr, Does.Contain(rule));
            Assert.That(result.Stderr, Does.Not.Contain(" at Hypervisor."), "no stack trace");
            Assert.That(result.Stderr, Does.Not.Contain("internal error"), "bad input, not a bug");
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    private static void AssertUsageError(CliResult result, string text)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Stdout + result.Stderr);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.Stderr, Does.StartWith("hv: error: "));
            Assert.That(result.Stderr, Does.Contain(text));
            Assert.That(result.Stderr, Does.Contain("(see 'hv run --help')"));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    private static string Row(IReadOnlyList<string> rows, string figure) =>
        rows.FirstOrDefault(r => r.StartsWith(figure + " ", StringComparison.Ordinal)) ?? string.Empty;

    private static string Figure(IReadOnlyList<string> rows, string figure) =>
        System.Text.RegularExpressions.Regex.Match(Row(rows, figure), $@"^{figure}\s+(\S+)").Groups[1].Value;

    private static void RequireKvm()
    {
        if (!KvmAvailability.IsAvailable(out var why))
        {
            Assert.Ignore("KVM is not available here: " + why);
        }
    }

    private string Write(string name, byte[] image)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, image);
        return path;
    }
}

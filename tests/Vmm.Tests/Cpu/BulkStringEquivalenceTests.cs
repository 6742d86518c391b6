using System.Buffers.Binary;
using System.Diagnostics;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The bulk path of REP MOVS/STOS against the element loop (<see cref="X86Cpu.BulkStrings"/> off): seeded random
/// copies and fills — both directions, every element size, overlapping operands, page crossings, a source or
/// destination that faults mid-copy (a non-present and a read-only page), two virtual pages aliasing one frame — end
/// in the same registers, CR2, exception and memory; and wherever a chunk of the bulk path stops (budget 1 at a time),
/// RCX, RSI and RDI agree with the bytes it copied. A REP MOVS into MMIO with a count of 2^63 returns within its budget.
/// </summary>
public sealed class BulkStringEquivalenceTests
{
    // 64-bit layout: the page directory's entry for [2 MiB, 4 MiB) points to a 4 KiB page table at PageTable, so
    // single pages of the window can be absent, read-only or aliased.
    private const ulong PageTable = 0x1F_0000;
    private const ulong Window = 0x20_0000;
    private const ulong WindowEnd = 0x23_0000;
    private const ulong Absent = 0x21_8000;
    private const ulong ReadOnly = 0x21_C000;
    private const ulong Alias = 0x21_E000;
    private const ulong AliasOf = 0x21_0000;
    private const ulong Handler = 0x10_0800;
    private const int Cases = 120;

    private static readonly (ulong Start, ulong End)[] Compared = [(0x7_0000, 0x8_0000), (Window, WindowEnd)];

    [Test]
    public void RandomCopiesAndFillsEndAsTheElementLoopEnds([Values(32, 64)] int bitness)
    {
        var random = new Random(bitness);
        var bulkChunks = 0L;
        var faults = 0;
        for (var n = 0; n < Cases; n++)
        {
            var c = StringCase.Draw(random, bitness);
            using var reference = Prepare(c, bulk: false);
            using var bulk = Prepare(c, bulk: true);
            var expected = reference.Run(1_000_000);

            // The bulk machine in steps of one instruction: after each unfinished chunk the registers say exactly how far it got.
            CpuExit exit;
            var steps = 0;
            do
            {
                exit = bulk.Run(1);
                steps++;
                if (exit.Reason == CpuExitReason.BudgetExhausted)
                {
                    AssertConsistentProgress(c, bulk);
                }
            }
            while (exit.Reason == CpuExitReason.BudgetExhausted && steps < 100_000);

            bulkChunks += steps;
            faults += reference.Cpu.Rip == Handler + 1 ? 1 : 0;
            Assert.Multiple(() =>
            {
                Assert.That(exit.Reason, Is.EqualTo(expected.Reason), c.ToString);
                foreach (var register in new[] { Register.RCX, Register.RSI, Register.RDI, Register.RSP })
                {
                    Assert.That(bulk[register], Is.EqualTo(reference[register]), () => $"{register}: {c}");
                }

                Assert.That(bulk.Cpu.Rip, Is.EqualTo(reference.Cpu.Rip), c.ToString);
                Assert.That(bulk.Cpu.Cr2, Is.EqualTo(reference.Cpu.Cr2), c.ToString);
                Assert.That(bulk.Rflags, Is.EqualTo(reference.Rflags), c.ToString);
                foreach (var (start, end) in Compared)
                {
                    Assert.That(bulk.ReadBytes(start, (int)(end - start)).AsSpan().SequenceEqual(reference.ReadBytes(start, (int)(end - start))), Is.True, () => $"memory [0x{start:x}, 0x{end:x}): {c}");
                }
            });
        }

        TestContext.Out.WriteLine($"{Cases} cases, {faults} faulted mid-copy, {bulkChunks} executions of the bulk machine");
        if (bitness == 64)
        {
            Assert.That(faults, Is.GreaterThan(Cases / 20), "the cases reach the absent and read-only pages");
        }
    }

    [Test]
    public void ACopyOfManyPagesStopsEveryChunkWithExactRegistersAndCountsAgainstTheBudget([Values(false, true)] bool down)
    {
        const int bytes = 1 << 20;
        var source = Window + (down ? (ulong)bytes - 4 : 0);
        var destination = Window + 0x10_0000 + (down ? (ulong)bytes - 4 : 0);
        using var m = CpuTestMachine.With(32, a =>
        {
            a.rep.movsd();
            a.hlt();
        });
        var pattern = new byte[bytes];
        new Random(5).NextBytes(pattern);
        m.WriteBytes(Window, pattern);
        m[Register.RSI] = source;
        m[Register.RDI] = destination;
        m[Register.RCX] = bytes / 4;
        m.Rflags = down ? 0x402UL : 0x2UL;

        var chunks = 0;
        while (m.Run(1).Reason == CpuExitReason.BudgetExhausted && m[Register.RCX] != 0)
        {
            chunks++;
            var done = (ulong)(bytes / 4) - m[Register.RCX];
            Assert.That(m.Cpu.Rip, Is.EqualTo(CpuTestMachine.CodeAddress), "an unfinished REP MOVS stays on itself");
            Assert.That(m[Register.RDI], Is.EqualTo(down ? destination - (4 * done) : destination + (4 * done)));
            Assert.That(m[Register.RSI], Is.EqualTo(down ? source - (4 * done) : source + (4 * done)));
        }

        Assert.Multiple(() =>
        {
            Assert.That(m.ReadBytes(Window + 0x10_0000, bytes), Is.EqualTo(pattern));
            Assert.That(chunks, Is.EqualTo((bytes / 4096 / X86Cpu.RepBulkChunkPages) - 1), "one budget unit per RepBulkChunkPages pages");
        });
    }

    // Fuzz seed 1 000 941 (64-bit): F3 2E A5, REP MOVSD with RCX = 0xFFFF800000000000 from RAM to RDI = 0x3F833E, 0x7CC2
    // bytes below the end of the 4 MiB of RAM: past it every store is an MMIO exit (~1 µs), and a chunk was 4 096 of them,
    // so the fuzzer's budget of 10 000 took 35 s against its watchdog's 20 s.
    [Test]
    public void RepMovsIntoMmioWithAHugeCountReturnsWithinTheBudget()
    {
        using var m = CpuTestMachine.With(64, a =>
        {
            a.rep.movsd();
            a.hlt();
        });
        const ulong count = 0xFFFF_8000_0000_0000;
        const ulong rsi = 0xA_79BB, rdi = 0x3F_833E;
        m[Register.RCX] = count;
        m[Register.RSI] = rsi;
        m[Register.RDI] = rdi;
        var clock = Stopwatch.StartNew();

        var exit = m.Run(1_000);

        var done = count - m[Register.RCX];
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "1 000 chunks of at most RepDeviceChunk exits each");
            Assert.That(m.Cpu.Stats.MmioAccesses, Is.InRange(900L * X86Cpu.RepDeviceChunk, 1_000L * X86Cpu.RepDeviceChunk));
            Assert.That(m[Register.RDI], Is.EqualTo(rdi + (4 * done)));
            Assert.That(m[Register.RSI], Is.EqualTo(rsi + (4 * done)));
            Assert.That(m.ReadBytes(rdi, (int)(CpuTestMachine.RamBytes - rdi)), Is.EqualTo(m.ReadBytes(rsi, (int)(CpuTestMachine.RamBytes - rdi))), "RAM up to its end got the copy");
        });
    }

    private static void AssertConsistentProgress(StringCase c, CpuTestMachine m)
    {
        if (m.Cpu.Rip == Handler)
        {
            return; // The fault's state is compared with the element loop's at the end.
        }

        var done = c.Count - m[Register.RCX];
        var moved = unchecked(done * (ulong)c.Size);
        var sign = c.Down ? unchecked(0UL - moved) : moved;
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Rip, m[Register.RCX] == 0 ? Is.GreaterThan(CpuTestMachine.CodeAddress) : Is.EqualTo(CpuTestMachine.CodeAddress), () => $"an unfinished chunk stays on the instruction: {c}");
            Assert.That(m[Register.RDI], Is.EqualTo(c.Mask(c.Rdi + sign)), () => $"RDI after {done} elements: {c}");
            if (c.Movs)
            {
                Assert.That(m[Register.RSI], Is.EqualTo(c.Mask(c.Rsi + sign)), () => $"RSI after {done} elements: {c}");
            }
        });
    }

    private static CpuTestMachine Prepare(StringCase c, bool bulk)
    {
        var m = CpuTestMachine.With(c.Bitness, a =>
        {
            switch ((c.Movs, c.Size))
            {
                case (true, 1): a.rep.movsb(); break;
                case (true, 2): a.rep.movsw(); break;
                case (true, 4): a.rep.movsd(); break;
                case (true, _): a.rep.movsq(); break;
                case (false, 1): a.rep.stosb(); break;
                case (false, 2): a.rep.stosw(); break;
                case (false, 4): a.rep.stosd(); break;
                default: a.rep.stosq(); break;
            }

            a.hlt();
        });
        m.Cpu.BulkStrings = bulk;
        m.WriteCode(Handler, [0xF4]);
        m.SetGate((int)ExceptionVector.PageFault, Handler);
        m.SetGate((int)ExceptionVector.GeneralProtection, Handler);
        var contents = new byte[(int)(WindowEnd - Window)];
        new Random((int)c.Seed).NextBytes(contents);
        m.WriteBytes(Window, contents);
        if (c.Bitness == 64)
        {
            var table = new byte[4096];
            for (var i = 0; i < 512; i++)
            {
                var page = Window + ((ulong)i << 12);
                var entry = page switch
                {
                    Absent => 0UL,
                    ReadOnly => page | 0x1,
                    Alias => AliasOf | 0x3,
                    _ => page | 0x3,
                };
                BinaryPrimitives.WriteUInt64LittleEndian(table.AsSpan(i * 8), entry);
            }

            m.WriteBytes(PageTable, table);
            m.WriteUInt64(LongModeBoot.PdAddress + 8, PageTable | 0x3);
        }

        m[Register.RCX] = c.Count;
        m[Register.RSI] = c.Rsi;
        m[Register.RDI] = c.Rdi;
        m[Register.RAX] = 0x8877_6655_4433_2211;
        m.Rflags = c.Down ? 0x402UL : 0x2UL;
        return m;
    }

    private sealed record StringCase(ulong Seed, int Bitness, bool Movs, int Size, bool Down, ulong Rsi, ulong Rdi, ulong Count)
    {
        public static StringCase Draw(Random random, int bitness)
        {
            var size = 1 << random.Next(bitness == 64 ? 4 : 3);
            var movs = random.Next(3) != 0;
            var down = random.Next(2) == 0;
            var rsi = Pointer(random);

            // A third of the copies overlap their source by a few bytes either way.
            var rdi = movs && random.Next(3) == 0 ? (ulong)((long)rsi + random.Next(-20, 21)) : Pointer(random);
            var count = (ulong)random.Next(0, 3 * 4096 / size);
            return new StringCase((ulong)random.NextInt64(), bitness, movs, size, down, rsi, rdi, count);
        }

        public ulong Mask(ulong offset) => Bitness == 64 ? offset : (uint)offset;

        public override string ToString() =>
            $"{Bitness}-bit REP {(Movs ? "MOVS" : "STOS")}{Size * 8} {(Down ? "DF=1" : "DF=0")} RSI=0x{Rsi:x} RDI=0x{Rdi:x} RCX={Count} (memory seed {Seed})";

        // Near a page boundary, the absent, read-only or aliased page, or anywhere in the window's middle, at any alignment.
        private static ulong Pointer(Random random)
        {
            ulong[] anchors = [Absent, ReadOnly, Alias, AliasOf, Absent + 0x1000, 0x21_4000, 0x20_8000];
            var anchor = anchors[random.Next(anchors.Length)];
            return (ulong)((long)anchor + random.Next(-0x2400, 0x2400));
        }
    }
}

using System.Collections.Concurrent;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>
/// Seeded race: worker threads write and verify whole pages of their own process (contents drawn from a small set, so
/// pages of different processes keep merging), a meddler munmaps, remaps, mremaps, forks and reaps, toggles
/// MADV_MERGEABLE, makes pages PROT_NONE for a moment and exits and recreates its process, a reclaimer swaps (KSM pages included) and the scanner steps —
/// all at once, in rounds. After every round, with the threads parked at a barrier, the host audit (KSM invariants
/// included) must be clean; no read may ever return anything but what its process last wrote; at the end, after two
/// quiet full scans, the settled KSM audit must be clean too.
/// </summary>
public class KsmRaceTests
{
    private const int Pages = 48;
    private const int Workers = 3;
    private const int Contents = 12;

    [Test]
    public void Merging_never_changes_what_a_process_reads_and_the_audit_is_clean_after_every_round([Values(1, 2)] int seed) => Race(seed, rounds: 25);

    /// <summary>The same race, long: <c>--filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressMergingNeverChangesWhatAProcessReads([Range(1, 4)] int seed) => Race(seed * 7919, rounds: 600);

    private static void Race(int seed, int rounds)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
            LegacyChangePte = seed % 2 == 1,
        });
        host.Ksm.UseZeroPages = seed % 2 == 0;
        host.Ksm.Run = KsmRunMode.Merge;
        var contents = Enumerable.Range(0, Contents).Select(i => KsmHosts.PageOf(i == 0 ? 0 : 4000 + i)).ToArray();
        var problems = new ConcurrentQueue<string>();
        var stop = 0;

        void Audit(Barrier barrier)
        {
            var violations = HostMmAuditor.Check(host);
            if (violations.Count != 0)
            {
                problems.Enqueue($"round {barrier.CurrentPhaseNumber}: {string.Join(Environment.NewLine, violations.Take(10))}");
            }

            if (!problems.IsEmpty)
            {
                Volatile.Write(ref stop, 1);
            }
        }

        using var barrier = new Barrier(Workers + 3, Audit);

        void Loop(string name, Action<Random> burst, int threadSeed)
        {
            var random = new Random(threadSeed);
            try
            {
                for (var round = 0; round < rounds && Volatile.Read(ref stop) == 0; round++)
                {
                    try
                    {
                        burst(random);
                    }
                    catch (Exception e)
                    {
                        problems.Enqueue($"{name}: {e}");
                        Volatile.Write(ref stop, 1);
                    }

                    barrier.SignalAndWait();
                }
            }
            finally
            {
                barrier.RemoveParticipant();
            }
        }

        var threads = new List<Thread>();
        var shadows = new List<ShadowMmu>();
        for (var w = 0; w < Workers; w++)
        {
            var worker = new ProcessModel(host, contents, Pages);
            shadows.Add(worker.Shadow);
            var id = w;
            threads.Add(new Thread(() => Loop($"worker {id}", random => worker.Burst(random, 60, problems), (seed * 31) + id)));
        }

        var meddled = new ProcessModel(host, contents, Pages);
        threads.Add(new Thread(() => Loop("meddler", random => meddled.Meddle(random, problems), seed * 97)));
        threads.Add(new Thread(() => Loop("ksmd", _ =>
        {
            for (var i = 0; i < 8; i++)
            {
                host.Ksm.Step(24);
            }
        }, seed)));
        threads.Add(new Thread(() => Loop("reclaim", random =>
        {
            for (var i = 0; i < 3; i++)
            {
                host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 1 + random.Next(12));
                Thread.Yield();
            }
        }, seed + 1)));

        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
        TestContext.Out.WriteLine($"{host.Ksm.Stats}; cow_ksm {host.Stats.CowKsm}, ksm_swpin_copy {host.Stats.KsmSwpinCopy}, pswpout {host.Reclaim.Stats.Pswpout}, pswpin {host.Reclaim.Stats.Pswpin}");
        Assert.That(host.Ksm.Stats.Merges, Is.GreaterThan(0), "the race merged");
        Assert.That(host.Stats.CowKsm, Is.GreaterThan(0), "writes broke merged pages");
        Assert.That(shadows.Sum(s => s.ChangePteHits), Is.Zero, "inside start/end the shadow entry is always gone already: change_pte never finds one");
        if (host.Options.LegacyChangePte)
        {
            Assert.That(shadows.Sum(s => s.ChangePteMisses), Is.GreaterThan(0));
        }

        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0), "the race swapped");
        KsmHosts.FullScans(host);
        var settled = HostMmAuditor.CheckKsmSettled(host);
        Assert.That(settled, Is.Empty, string.Join(Environment.NewLine, settled.Take(20)));
    }

    /// <summary>A process whose mergeable region's pages each hold one of a few known contents, tracked exactly.</summary>
    private sealed class ProcessModel
    {
        private readonly Host _host;
        private readonly byte[][] _contents;
        private readonly int[] _expected;
        private readonly byte[] _buffer = new byte[KsmHosts.Page];
        private Mm _mm;
        private Hva _start;

        public ProcessModel(Host host, byte[][] contents, int pages)
        {
            _host = host;
            _contents = contents;
            _expected = new int[pages];
            (_mm, _start) = Create();
        }

        /// <summary>A secondary MMU over the process (the workers' "guest" accesses go through it); new with each process.</summary>
        public ShadowMmu Shadow { get; private set; } = null!;

        private ulong Length => (ulong)_expected.Length * KsmHosts.Page;

        /// <summary>Random whole-page writes and verified reads.</summary>
        public void Burst(Random random, int operations, ConcurrentQueue<string> problems)
        {
            for (var i = 0; i < operations; i++)
            {
                var page = random.Next(_expected.Length);
                var guest = random.Next(2) == 0;
                if (random.Next(3) == 0)
                {
                    var content = random.Next(_contents.Length);
                    if (guest)
                    {
                        Shadow.Write(_start + ((ulong)page * KsmHosts.Page), _contents[content]);
                        _expected[page] = content;
                    }
                    else
                    {
                        Write(page, content);
                    }
                }
                else if (guest)
                {
                    Shadow.Read(_start + ((ulong)page * KsmHosts.Page), _buffer);
                    Check(_mm, page, problems, "guest read");
                }
                else
                {
                    Verify(_mm, page, problems, "read");
                }
            }
        }

        /// <summary>A few address-space changes, each followed by checks of what the process reads.</summary>
        public void Meddle(Random random, ConcurrentQueue<string> problems)
        {
            var page = random.Next(_expected.Length - 4);
            switch (random.Next(8))
            {
                case 0: // munmap and map again: the pages read as zeroes
                    _mm.Munmap(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page);
                    _mm.Mmap(4 * KsmHosts.Page, Protection.Read | Protection.Write, MmapFlags.Fixed, _start + ((ulong)page * KsmHosts.Page));
                    _mm.Madvise(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page, Advice.Mergeable);
                    Array.Fill(_expected, 0, page, 4);
                    break;
                case 1: // move the whole region, one VMA at a time (munmap and mmap above may have split it)
                    var target = _start + (Length * (ulong)(2 + random.Next(4)));
                    foreach (var vma in _mm.Vmas.Where(v => v.Start >= _start && v.End <= _start + Length))
                    {
                        _mm.Mremap(vma.Start, vma.Length, vma.Length, MremapFlags.MayMove | MremapFlags.Fixed, target + (vma.Start - _start));
                    }

                    _start = target;
                    break;
                case 2: // fork; the child reads what the parent wrote, then exits
                    var child = _mm.Fork();
                    Verify(child, page, problems, "fork child");
                    child.Write(_start + ((ulong)page * KsmHosts.Page), _contents[random.Next(_contents.Length)]);
                    Verify(_mm, page, problems, "parent after the child wrote");
                    child.Exit();
                    break;
                case 3: // unmergeable and mergeable again
                    _mm.Madvise(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page, Advice.Unmergeable);
                    _mm.Madvise(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page, Advice.Mergeable);
                    break;
                case 4: // exit and start over
                    _mm.Exit();
                    Array.Fill(_expected, 0);
                    (_mm, _start) = Create();
                    break;
                case 5: // PROT_NONE for a moment: KSM pages and KSM-placed zero pages keep their state
                    _mm.Mprotect(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page, Protection.None);
                    Thread.Yield();
                    _mm.Mprotect(_start + ((ulong)page * KsmHosts.Page), 4 * KsmHosts.Page, Protection.Read | Protection.Write);
                    break;
                default:
                    Burst(random, 8, problems);
                    break;
            }

            for (var i = 0; i < 4; i++)
            {
                Verify(_mm, page + i, problems, "after meddling");
            }
        }

        private (Mm, Hva) Create()
        {
            var mm = _host.CreateMm();
            mm.SetMemoryMerge(true);
            var start = mm.Mmap(Length, Protection.Read | Protection.Write);
            _mm = mm;
            _start = start;
            Shadow = new ShadowMmu(mm);
            for (var page = 0; page < _expected.Length; page++)
            {
                Write(page, page % _contents.Length);
            }

            return (mm, start);
        }

        private void Write(int page, int content)
        {
            _mm.Write(_start + ((ulong)page * KsmHosts.Page), _contents[content]);
            _expected[page] = content;
        }

        private void Verify(Mm mm, int page, ConcurrentQueue<string> problems, string when)
        {
            mm.Read(_start + ((ulong)page * KsmHosts.Page), _buffer);
            Check(mm, page, problems, when);
        }

        private void Check(Mm mm, int page, ConcurrentQueue<string> problems, string when)
        {
            if (!_buffer.AsSpan().SequenceEqual(_contents[_expected[page]]))
            {
                var seen = Array.FindIndex(_contents, c => c.AsSpan().SequenceEqual(_buffer));
                problems.Enqueue($"{mm} page {page} ({when}): expected content {_expected[page]}, read {(seen < 0 ? "something else" : $"content {seen}")}");
            }
        }
    }
}

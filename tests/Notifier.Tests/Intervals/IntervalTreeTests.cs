using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Notifier.Tests.Intervals;

public sealed class IntervalTreeTests
{
    private static List<IntervalTreeNode<TestPayload>> Enumerate(IntervalTree<TestPayload> tree, ulong start, ulong last)
    {
        var result = new List<IntervalTreeNode<TestPayload>>();
        foreach (var node in tree.Overlapping(start, last))
        {
            result.Add(node);
        }

        return result;
    }

    private static List<IntervalTreeNode<TestPayload>> Chain(IntervalTree<TestPayload> tree, ulong start, ulong last)
    {
        var result = new List<IntervalTreeNode<TestPayload>>();
        for (var node = tree.FirstOverlap(start, last); node is not null; node = node.NextOverlap(start, last))
        {
            result.Add(node);
        }

        return result;
    }

    private static ulong NextULong(Random rng) => unchecked((ulong)rng.NextInt64(long.MinValue, long.MaxValue));

    private static (ulong Start, ulong Last) RandomInterval(Random rng, List<IntervalTreeNode<TestPayload>> model)
    {
        switch (rng.Next(10))
        {
            case 6:
                {
                    var point = (ulong)rng.Next(0, 2000);
                    return (point, point);
                }

            case 7:
                {
                    var start = ulong.MaxValue - (ulong)rng.Next(0, 1000);
                    return (start, rng.Next(2) == 0 ? ulong.MaxValue : start + (ulong)rng.Next(0, (int)(ulong.MaxValue - start) + 1));
                }

            case 8:
                {
                    var a = NextULong(rng);
                    var b = NextULong(rng);
                    return (Math.Min(a, b), Math.Max(a, b));
                }

            case 9 when model.Count > 0:
                {
                    var twin = model[rng.Next(model.Count)];
                    return (twin.Start, twin.Last);
                }

            default:
                {
                    var start = (ulong)rng.Next(0, 2000);
                    return (start, start + (ulong)rng.Next(0, 100));
                }
        }
    }

    private static (ulong Start, ulong Last) RandomQuery(Random rng)
    {
        switch (rng.Next(8))
        {
            case 0:
                {
                    var point = (ulong)rng.Next(0, 2100);
                    return (point, point);
                }

            case 1:
                return (ulong.MaxValue, ulong.MaxValue);
            case 2:
                return (0, ulong.MaxValue);
            case 3:
                {
                    var a = NextULong(rng);
                    var b = NextULong(rng);
                    return (Math.Min(a, b), Math.Max(a, b));
                }

            case 4:
                return (ulong.MaxValue - (ulong)rng.Next(0, 2000), ulong.MaxValue);
            default:
                {
                    var start = (ulong)rng.Next(0, 2100);
                    return (start, start + (ulong)rng.Next(0, 300));
                }
        }
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void RandomOperations_MatchBruteForceModel(int seed)
    {
        var rng = new Random(seed);
        var tree = new IntervalTree<TestPayload>();

        // The model is the expected in-order sequence: by start, then insertion order.
        var model = new List<IntervalTreeNode<TestPayload>>();
        var nextId = 0;
        var nonEmptyQueries = 0;

        for (var op = 0; op < 4000; op++)
        {
            var roll = rng.Next(100);
            if (roll < 45 || model.Count == 0)
            {
                var (start, last) = RandomInterval(rng, model);
                var payload = new TestPayload(nextId++);
                var node = tree.Insert(start, last, payload);
                Assert.That((node.Start, node.Last, node.Value), Is.EqualTo((start, last, payload)));
                var at = model.FindIndex(n => n.Start > start);
                model.Insert(at < 0 ? model.Count : at, node);
            }
            else if (roll < 75)
            {
                var victim = model[rng.Next(model.Count)];
                tree.Remove(victim);
                model.Remove(victim);
                Assert.That(victim.IsInTree, Is.False);
            }
            else
            {
                var (start, last) = RandomQuery(rng);
                var expected = model.Where(n => n.Start <= last && n.Last >= start).ToList();
                nonEmptyQueries += expected.Count > 0 ? 1 : 0;
                Assert.That(Enumerate(tree, start, last), Is.EqualTo(expected), $"Overlapping [{start:x}, {last:x}] at op {op}");
                Assert.That(Chain(tree, start, last), Is.EqualTo(expected), $"NextOverlap chain [{start:x}, {last:x}] at op {op}");
                Assert.That(tree.FirstOverlap(start, last), Is.SameAs(expected.FirstOrDefault()));
                Assert.That(tree.AnyOverlap(start, last), Is.EqualTo(expected.Count > 0));
            }

            Assert.That(tree.Count, Is.EqualTo(model.Count));
            if (op % 64 == 0)
            {
                Assert.That(IntervalTreeInvariants.Check(tree), Is.EqualTo(model), $"in-order sequence at op {op}");
            }
        }

        // The workload must actually exercise matches, or the comparison above proves little.
        Assert.That(nonEmptyQueries, Is.GreaterThan(200));

        // Drain in random order, checking structure along the way.
        while (model.Count > 0)
        {
            var victim = model[rng.Next(model.Count)];
            tree.Remove(victim);
            model.Remove(victim);
            if (model.Count % 16 == 0)
            {
                Assert.That(IntervalTreeInvariants.Check(tree), Is.EqualTo(model));
            }
        }

        Assert.That(tree.Count, Is.Zero);
        Assert.That(tree.Root, Is.Null);
        Assert.That(tree.AnyOverlap(0, ulong.MaxValue), Is.False);
    }

    [Test]
    public void AscendingInserts_StayWithinAvlHeightBound()
    {
        var tree = new IntervalTree<TestPayload>();
        var nodes = new List<IntervalTreeNode<TestPayload>>();
        for (var i = 0; i < 5000; i++)
        {
            nodes.Add(tree.Insert((ulong)i, (ulong)i + 10, new TestPayload(i)));
            Assert.That(tree.Height, Is.LessThanOrEqualTo(HeightBound(tree.Count)), $"after {tree.Count} ascending inserts");
        }

        // Removing from one end is the other classic way to unbalance a naive tree.
        for (var i = 0; i < 4000; i++)
        {
            tree.Remove(nodes[i]);
            Assert.That(tree.Height, Is.LessThanOrEqualTo(HeightBound(tree.Count)), $"after removals down to {tree.Count}");
        }

        IntervalTreeInvariants.Check(tree);
    }

    [Test]
    public void EqualStarts_AreBalancedAndKeepInsertionOrder()
    {
        var tree = new IntervalTree<TestPayload>();
        var nodes = new List<IntervalTreeNode<TestPayload>>();
        for (var i = 0; i < 2000; i++)
        {
            nodes.Add(tree.Insert(7, 7 + (ulong)(i % 5), new TestPayload(i)));
        }

        Assert.That(tree.Height, Is.LessThanOrEqualTo(HeightBound(tree.Count)));
        Assert.That(Enumerate(tree, 7, 7), Is.EqualTo(nodes));

        tree.Remove(nodes[1000]);
        nodes.RemoveAt(1000);
        tree.Remove(nodes[0]);
        nodes.RemoveAt(0);
        Assert.That(Enumerate(tree, 0, 100), Is.EqualTo(nodes));
        Assert.That(Enumerate(tree, 11, 11), Is.EqualTo(nodes.Where(n => n.Last == 11).ToList()));
    }

    private static double HeightBound(int count) => 1.45 * Math.Log2(count + 2);

    [Test]
    public void DuplicateIntervals_AreAllYieldedInInsertionOrder()
    {
        var tree = new IntervalTree<TestPayload>();
        var before = tree.Insert(10, 20, new TestPayload(0));
        var twins = Enumerable.Range(1, 5).Select(i => tree.Insert(30, 40, new TestPayload(i))).ToList();
        var after = tree.Insert(35, 35, new TestPayload(6));

        Assert.That(Enumerate(tree, 40, 40), Is.EqualTo(twins));
        Assert.That(Enumerate(tree, 20, 35), Is.EqualTo(new[] { before }.Concat(twins).Append(after).ToList()));

        tree.Remove(twins[2]);
        twins.RemoveAt(2);
        Assert.That(Enumerate(tree, 30, 30), Is.EqualTo(twins));
    }

    [Test]
    public void DegenerateAndBoundaryIntervals_AreFoundByPointQueries()
    {
        var tree = new IntervalTree<TestPayload>();
        var zero = tree.Insert(0, 0, new TestPayload(0));
        var top = tree.Insert(ulong.MaxValue, ulong.MaxValue, new TestPayload(1));
        var all = tree.Insert(0, ulong.MaxValue, new TestPayload(2));
        var mid = tree.Insert(100, 100, new TestPayload(3));
        var tail = tree.Insert(ulong.MaxValue - 4096, ulong.MaxValue, new TestPayload(4));

        Assert.That(Enumerate(tree, 0, 0), Is.EqualTo(new[] { zero, all }));
        Assert.That(Enumerate(tree, ulong.MaxValue, ulong.MaxValue), Is.EqualTo(new[] { all, tail, top }));
        Assert.That(Enumerate(tree, 100, 100), Is.EqualTo(new[] { all, mid }));
        Assert.That(Enumerate(tree, 99, 99), Is.EqualTo(new[] { all }));
        Assert.That(Enumerate(tree, 101, ulong.MaxValue - 4097), Is.EqualTo(new[] { all }));
        Assert.That(Enumerate(tree, 0, ulong.MaxValue), Is.EqualTo(new[] { zero, all, mid, tail, top }));

        tree.Remove(all);
        Assert.That(tree.AnyOverlap(1, 99), Is.False);
        Assert.That(tree.FirstOverlap(101, ulong.MaxValue - 4097), Is.Null);
        Assert.That(tree.FirstOverlap(ulong.MaxValue - 1, ulong.MaxValue - 1), Is.SameAs(tail));
    }

    [Test]
    public void QueryEndpoints_AreInclusive()
    {
        var tree = new IntervalTree<TestPayload>();
        var node = tree.Insert(10, 20, new TestPayload(0));

        Assert.That(tree.FirstOverlap(20, 30), Is.SameAs(node));
        Assert.That(tree.FirstOverlap(0, 10), Is.SameAs(node));
        Assert.That(tree.AnyOverlap(21, 30), Is.False);
        Assert.That(tree.AnyOverlap(0, 9), Is.False);
    }

    [Test]
    public void NextOverlap_SkipsNonOverlappingNodesBetweenMatches()
    {
        var tree = new IntervalTree<TestPayload>();
        var wide = tree.Insert(0, 1000, new TestPayload(0));
        for (var i = 1; i < 200; i++)
        {
            tree.Insert((ulong)i, (ulong)i, new TestPayload(i));
        }

        var far = tree.Insert(500, 600, new TestPayload(500));

        Assert.That(wide.NextOverlap(550, 550), Is.SameAs(far));
        Assert.That(far.NextOverlap(550, 550), Is.Null);
        Assert.That(Chain(tree, 550, 700), Is.EqualTo(new[] { wide, far }));
    }

    [Test]
    public void RemovingEveryNode_LeavesAnEmptyReusableTree()
    {
        var tree = new IntervalTree<TestPayload>();
        var nodes = Enumerable.Range(0, 300).Select(i => tree.Insert((ulong)(i * 7 % 101), (ulong)(i * 7 % 101) + 3, new TestPayload(i))).ToList();
        foreach (var node in nodes)
        {
            tree.Remove(node);
        }

        Assert.That(tree.Count, Is.Zero);
        Assert.That(tree.Height, Is.Zero);
        Assert.That(nodes.All(n => !n.IsInTree), Is.True);
        Assert.That(Enumerate(tree, 0, ulong.MaxValue), Is.Empty);

        var again = tree.Insert(5, 5, new TestPayload(1000));
        Assert.That(Enumerate(tree, 0, 10), Is.EqualTo(new[] { again }));
    }

    [Test]
    public void ReversedIntervals_ThrowInvalidRangeNamingTheValues()
    {
        var tree = new IntervalTree<TestPayload>();
        var node = tree.Insert(1, 2, new TestPayload(0));

        var insert = Assert.Throws<InvalidRangeException>(() => tree.Insert(0x50, 0x4f, new TestPayload(1)));
        Assert.That(insert!.Message, Does.Contain("0x50").And.Contain("0x4f").And.Contain("start must not exceed last"));
        Assert.Throws<InvalidRangeException>(() => tree.Overlapping(3, 2));
        Assert.Throws<InvalidRangeException>(() => tree.FirstOverlap(3, 2));
        Assert.Throws<InvalidRangeException>(() => tree.AnyOverlap(ulong.MaxValue, 0));
        Assert.Throws<InvalidRangeException>(() => node.NextOverlap(3, 2));
        Assert.That(tree.Count, Is.EqualTo(1));
    }

    [Test]
    public void NullValue_Throws()
    {
        var tree = new IntervalTree<TestPayload>();
        Assert.Throws<ArgumentNullException>(() => tree.Insert(1, 2, null!));
    }

    [Test]
    public void RemovingANodeTwice_ThrowsInvalidOperation()
    {
        var tree = new IntervalTree<TestPayload>();
        var node = tree.Insert(0x10, 0x20, new TestPayload(0));
        tree.Insert(0x11, 0x21, new TestPayload(1));
        tree.Remove(node);

        var ex = Assert.Throws<InvalidOperationException>(() => tree.Remove(node));
        Assert.That(ex!.Message, Does.Contain("[0x10, 0x20]").And.Contain("already removed"));
        Assert.That(tree.Count, Is.EqualTo(1));
        Assert.Throws<InvalidOperationException>(() => node.NextOverlap(0, 100));
    }

    [Test]
    public void RemovingAnotherTreesNode_ThrowsAndLeavesBothTreesIntact()
    {
        var first = new IntervalTree<TestPayload>();
        var second = new IntervalTree<TestPayload>();
        var foreign = first.Insert(1, 2, new TestPayload(0));
        second.Insert(1, 2, new TestPayload(1));

        var ex = Assert.Throws<InvalidOperationException>(() => second.Remove(foreign));
        Assert.That(ex!.Message, Does.Contain("another tree"));
        Assert.That((first.Count, second.Count), Is.EqualTo((1, 1)));
        Assert.That(foreign.IsInTree, Is.True);
    }

    [Test]
    public void Enumerator_RefusesATreeModifiedDuringEnumeration()
    {
        var tree = new IntervalTree<TestPayload>();
        tree.Insert(1, 5, new TestPayload(0));
        tree.Insert(2, 5, new TestPayload(1));

        var enumerator = tree.Overlapping(0, 10);
        Assert.That(enumerator.MoveNext(), Is.True);
        tree.Insert(3, 3, new TestPayload(2));
        Assert.Throws<InvalidOperationException>(() => enumerator.MoveNext());
    }

    [Test]
    public void Enumerator_CurrentOutsideANodeThrows_AndDefaultIsEmpty()
    {
        var tree = new IntervalTree<TestPayload>();
        tree.Insert(1, 5, new TestPayload(0));

        var enumerator = tree.Overlapping(0, 10);
        Assert.Throws<InvalidOperationException>(() => _ = enumerator.Current);
        Assert.That(enumerator.MoveNext(), Is.True);
        Assert.That(enumerator.MoveNext(), Is.False);
        Assert.That(enumerator.MoveNext(), Is.False);

        var empty = default(IntervalTreeOverlapEnumerator<TestPayload>);
        Assert.That(empty.MoveNext(), Is.False);
    }

    [Test]
    public void RemoveWhileWalking_WorksWithNextOverlapTakenFirst()
    {
        var tree = new IntervalTree<TestPayload>();
        for (var i = 0; i < 100; i++)
        {
            tree.Insert((ulong)i, (ulong)i + 1, new TestPayload(i));
        }

        var removed = 0;
        for (var node = tree.FirstOverlap(20, 60); node is not null;)
        {
            var next = node.NextOverlap(20, 60);
            tree.Remove(node);
            removed++;
            node = next;
        }

        Assert.That(removed, Is.EqualTo(42));
        Assert.That(tree.AnyOverlap(20, 60), Is.False);
        Assert.That(tree.Count, Is.EqualTo(58));
        IntervalTreeInvariants.Check(tree);
    }

    [Test]
    public void OverlapQueries_DoNotAllocate()
    {
        var tree = new IntervalTree<TestPayload>();
        for (var i = 0; i < 1000; i++)
        {
            tree.Insert((ulong)i * 10, (ulong)i * 10 + 25, new TestPayload(i));
        }

        static long Walk(IntervalTree<TestPayload> tree)
        {
            long sum = 0;
            for (ulong q = 0; q < 10000; q += 37)
            {
                foreach (var node in tree.Overlapping(q, q + 50))
                {
                    sum += (long)node.Start;
                }

                for (var node = tree.FirstOverlap(q, q); node is not null; node = node.NextOverlap(q, q))
                {
                    sum++;
                }

                sum += tree.AnyOverlap(q, q) ? 1 : 0;
            }

            return sum;
        }

        var expected = Walk(tree);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var sum = Walk(tree);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(sum, Is.EqualTo(expected));
        Assert.That(allocated, Is.Zero);
    }

    [Test]
    public void ConcurrentReadOnlyEnumeration_SeesTheSameResults()
    {
        var rng = new Random(7);
        var tree = new IntervalTree<TestPayload>();
        for (var i = 0; i < 2000; i++)
        {
            var start = (ulong)rng.Next(0, 100_000);
            tree.Insert(start, start + (ulong)rng.Next(0, 500), new TestPayload(i));
        }

        var queries = Enumerable.Range(0, 200).Select(_ => (ulong)rng.Next(0, 100_000)).ToArray();
        var expected = queries.Select(q => Enumerate(tree, q, q + 100).Count).ToArray();

        var failures = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            for (var round = 0; round < 5; round++)
            {
                for (var i = 0; i < queries.Length; i++)
                {
                    var count = 0;
                    foreach (var node in tree.Overlapping(queries[i], queries[i] + 100))
                    {
                        count++;
                    }

                    if (count != expected[i])
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            }
        });

        Assert.That(failures, Is.Zero);
        Assert.That(expected.Sum(), Is.GreaterThan(0));
    }
}

using Hypervisor.GuestMmu.Tlb;

namespace Hypervisor.GuestMmu.Tests.Tlb;

public class TlbShootdownTests
{
    [Test]
    public void VcpuOutsideTheGuestIsNotWaitedForAndFlushesOnEntry()
    {
        var flushes = 0;
        var port = new VcpuTlbPort(0, () => flushes++);
        var shootdown = new TlbShootdown();
        shootdown.Add(port);

        shootdown.FlushAll();

        Assert.That(shootdown.WaitTime, Is.EqualTo(TimeSpan.Zero), "no wait, no latency");
        Assert.That(flushes, Is.Zero, "nothing runs on the vCPU thread yet");
        Assert.That(port.HasPendingFlush, Is.True);
        Assert.That(shootdown.Waits, Is.Zero);
        port.EnterGuest();
        Assert.That(flushes, Is.EqualTo(1), "the pending request is serviced before guest code runs");
        Assert.That(port.HasPendingFlush, Is.False);
        Assert.That(port.ServiceRequests(), Is.False, "one flush per request");
    }

    [Test]
    public void FlushWaitsForAVcpuInTheGuestUntilItsBlockBoundary()
    {
        var flushes = 0;
        var port = new VcpuTlbPort(1, () => Interlocked.Increment(ref flushes));
        var shootdown = new TlbShootdown();
        shootdown.Add(port);
        port.EnterGuest();

        var flush = Task.Run(shootdown.FlushAll);
        Assert.That(flush.Wait(TimeSpan.FromMilliseconds(150)), Is.False, "the vCPU has not reached a block boundary");
        Assert.That(port.ServiceRequests(), Is.True);
        Assert.That(flush.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(Volatile.Read(ref flushes), Is.EqualTo(1));
        Assert.That(shootdown.Waits, Is.EqualTo(1));
        Assert.That(shootdown.WaitTime, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(100)), "the wait lasted until the block boundary, after the 150 ms check");
        Assert.That(shootdown.MaxWait, Is.EqualTo(shootdown.WaitTime), "one wait: the longest is the total");
    }

    [Test]
    public void LeavingTheGuestAnswersAWaitingFlush()
    {
        var flushes = 0;
        var port = new VcpuTlbPort(2, () => Interlocked.Increment(ref flushes));
        var shootdown = new TlbShootdown();
        shootdown.Add(port);
        port.EnterGuest();

        var flush = Task.Run(shootdown.FlushAll);
        Assert.That(SpinWait.SpinUntil(() => port.HasPendingFlush, TimeSpan.FromSeconds(10)), Is.True, "the flush posted its request");
        Assert.That(flush.IsCompleted, Is.False, "an unacknowledged request to a vCPU in the guest holds the flush");
        port.ExitGuest();

        Assert.That(flush.Wait(TimeSpan.FromSeconds(10)), Is.True, "leaving the guest released the flush");
        Assert.That(shootdown.Waits, Is.EqualTo(1), "the flush waited for the vCPU");
        Assert.That(Volatile.Read(ref flushes), Is.EqualTo(1), "leaving the guest serviced the request first");
        Assert.That(port.Mode, Is.EqualTo(VcpuMode.OutsideGuest));
    }

    [Test]
    public void RegisteringAPortTwiceIsRejected()
    {
        var port = new VcpuTlbPort(3, () => { });
        var shootdown = new TlbShootdown();
        shootdown.Add(port);
        Assert.That(() => shootdown.Add(port), Throws.ArgumentException.With.Message.Contains("vCPU 3"));
        shootdown.Remove(port);
        Assert.That(shootdown.Ports, Is.Empty);
    }

    /// <summary>
    /// vCPUs cache a "translation" (the mapping generation current when their TLB was filled) and use it at
    /// every instruction; a flusher changes the mapping, flushes, and only then forbids the old generation.
    /// No vCPU may ever use a forbidden generation.
    /// </summary>
    [Test]
    public void NoVcpuUsesATranslationOlderThanTheLastCompletedFlush([Values(3, 4)] int seed)
    {
        var shootdown = new TlbShootdown();
        long mapping = 1;
        long oldestAllowed = 1;
        var stop = false;
        var violations = 0;
        long instructions = 0;
        var vcpus = Enumerable.Range(0, 2).Select(id => new Thread(() =>
        {
            var random = new Random(seed * 10 + id);
            long cached = 0;
            var port = new VcpuTlbPort(id, () => cached = 0);
            shootdown.Add(port);
            port.EnterGuest();
            while (!Volatile.Read(ref stop))
            {
                port.ServiceRequests(); // block boundary
                for (var i = 0; i < 16; i++)
                {
                    if (cached == 0)
                    {
                        cached = Volatile.Read(ref mapping); // TLB fill by a page walk
                    }

                    if (cached < Volatile.Read(ref oldestAllowed))
                    {
                        Interlocked.Increment(ref violations);
                    }

                    Interlocked.Increment(ref instructions);
                }

                if (random.Next(64) == 0)
                {
                    // A short exit (no yield: a vCPU that gives its core away would sit outside the guest for
                    // most of the run, and flushes would rarely meet it inside).
                    port.ExitGuest();
                    port.EnterGuest();
                }
            }

            port.ExitGuest();
        })).ToList();
        vcpus.ForEach(t => t.Start());
        Assert.That(SpinWait.SpinUntil(() => Interlocked.Read(ref instructions) > 10_000, TimeSpan.FromSeconds(10)), Is.True);

        // 3000 flushes, and more (for at most 10 s) until one met a vCPU inside the guest and had to wait.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        for (var i = 0; i < 3000 || (shootdown.Waits == 0 && DateTime.UtcNow < deadline); i++)
        {
            var next = Interlocked.Increment(ref mapping);
            shootdown.FlushAll();
            Volatile.Write(ref oldestAllowed, next);
            Thread.SpinWait(200); // let the vCPUs run on the new mapping
        }

        Volatile.Write(ref stop, true);
        vcpus.ForEach(t => t.Join());
        Assert.That(violations, Is.Zero);
        Assert.That(Interlocked.Read(ref instructions), Is.GreaterThan(1000));
        Assert.That(shootdown.Waits, Is.GreaterThan(0), "some flushes had to wait for a vCPU in the guest");
    }
}

using Hypervisor.Vmm.Accel.Emulated;

namespace Hypervisor.Vmm.Tests.Accel.Emulated;

/// <summary>
/// The halt coordinator: the last vCPU to fall asleep learns the VM is halted; a kick counts the sleeper awake at once
/// (before its thread runs) and releases its wait, also when it comes between the sleep and the wait; a kick to an awake
/// vCPU does nothing; the VM's stop ends a wait.
/// </summary>
public sealed class HaltCoordinatorTests
{
    [Test]
    public void TheLastVcpuToSleepIsToldEveryVcpuIsAsleep()
    {
        var halts = new HaltCoordinator(3, id => id == 0);

        Assert.Multiple(() =>
        {
            Assert.That(halts.Awake, Is.EqualTo(1), "only the boot vCPU runs at first");
            Assert.That(halts.IsAsleep(1), Is.True, "an application processor waits for its start-up");
            Assert.That(halts.Sleep(0), Is.False, "the boot vCPU was the last one awake");
            Assert.That(halts.Awake, Is.Zero);
        });
    }

    [Test]
    public void AKickCountsTheSleeperAwakeBeforeItsThreadRunsSoTheSenderDoesNotSeeAHaltedVm()
    {
        var halts = new HaltCoordinator(2, _ => true);
        Assert.That(halts.Sleep(1), Is.True, "vCPU 0 is still awake");

        halts.Kick(1); // vCPU 0 sends vCPU 1 an IPI, then halts itself

        Assert.Multiple(() =>
        {
            Assert.That(halts.IsAsleep(1), Is.False);
            Assert.That(halts.Sleep(0), Is.True, "vCPU 1 counts as awake although its thread has not run yet");
            Assert.That(halts.Wait(1, CancellationToken.None), Is.True, "the kick before the wait is not lost");
            Assert.That(halts.Wakeups, Is.EqualTo(1));
        });
    }

    [Test]
    public void AKickToAnAwakeVcpuChangesNothing()
    {
        var halts = new HaltCoordinator(2, _ => true);

        halts.Kick(1);

        Assert.Multiple(() =>
        {
            Assert.That(halts.Awake, Is.EqualTo(2));
            Assert.That(halts.Wakeups, Is.Zero);
            Assert.That(halts.Sleep(1), Is.True);
        });
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.That(halts.Wait(1, stop.Token), Is.False, "no wake-up was banked while it was awake");
    }

    [Test]
    public void ASleepingVcpuWakesOnAnotherThreadsKickAndTheVmsStopEndsAWait()
    {
        var halts = new HaltCoordinator(3, _ => true);
        Assert.That(halts.Sleep(1), Is.True);
        Assert.That(halts.Sleep(2), Is.True);
        var woken = Task.Run(() => halts.Wait(1, CancellationToken.None));
        using var stop = new CancellationTokenSource();
        var stopped = Task.Run(() => halts.Wait(2, stop.Token));

        Assert.That(woken.Wait(TimeSpan.FromMilliseconds(100)), Is.False, "nothing has woken it yet");
        halts.Kick(1);
        stop.Cancel();

        Assert.Multiple(() =>
        {
            Assert.That(woken.Wait(TimeSpan.FromSeconds(10)) && woken.Result, Is.True, "the kick released the wait");
            Assert.That(stopped.Wait(TimeSpan.FromSeconds(10)) && !stopped.Result, Is.True, "the stop ended the other wait, reporting no wake-up");
            Assert.That(halts.Awake, Is.EqualTo(2), "vCPU 0 and the woken vCPU 1");
        });
    }
}

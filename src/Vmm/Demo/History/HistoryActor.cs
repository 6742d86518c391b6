namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// One thread of a replayed race (a vCPU, the exiting process, a migration, an unregister), run step by step by a
/// <see cref="StepScheduler"/>. Its state is guarded by the scheduler's monitor.
/// </summary>
internal sealed class HistoryActor
{
    internal HistoryActor(string name, Thread thread)
    {
        Name = name;
        Thread = thread;
    }

    /// <summary>The name the timeline's thread column shows.</summary>
    public string Name { get; }

    /// <summary>The actor's thread.</summary>
    public Thread Thread { get; }

    /// <summary>Managed id of <see cref="Thread"/>, as recorded timeline events carry it.</summary>
    public int ThreadId => Thread.ManagedThreadId;

    /// <summary>Where the actor is held, or null while it runs (or once it finished).</summary>
    internal HistoryPoint? ParkedAt { get; set; }

    /// <summary>True while the actor is held (at its start or at a point) and waits for a step.</summary>
    internal bool Waiting { get; set; }

    /// <summary>Set by the scheduler to let a held actor go on; cleared when it is held again.</summary>
    internal bool MayRun { get; set; }

    /// <summary>True once the actor's script returned or threw.</summary>
    internal bool Finished { get; set; }

    /// <summary>What the actor's script threw, if it did.</summary>
    internal Exception? Failure { get; set; }

    /// <inheritdoc />
    public override string ToString() => Name;
}

using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// Runs the actors of a replayed race one step at a time, so every run interleaves them the same way and prints the same
/// timeline: no sleeps decide the order. Each actor is a thread held at named points (<see cref="HistoryPoint"/>); a step
/// lets exactly one actor go until it is held at the next armed point, finishes, or is observed blocked in the code under
/// test (a fault waiting for an invalidation, an exit waiting for a grace period). The other actors stay held meanwhile,
/// so each step's events are one actor's, in program order.
/// </summary>
/// <remarks>
/// The actors' state is guarded by one monitor (<c>_sync</c>), a leaf: an actor is held inside
/// <see cref="Hold"/> with whatever locks its code holds at that point, and a step never needs them. Waits are bounded
/// (<see cref="StepTimeout"/>): a step that neither parks, finishes nor blocks is a bug in the scenario, reported as
/// <see cref="TimeoutException"/>.
/// </remarks>
internal sealed class StepScheduler
{
    /// <summary>Longest a step may take before the scenario is declared stuck.</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(1);

    private readonly object _sync = new();
    private readonly Dictionary<int, HistoryActor> _actors = [];
    private readonly HashSet<HistoryPoint> _armed = [];
    private readonly NotifierEventRecorder _recorder;

    /// <summary>Creates a scheduler whose step marks go into <paramref name="recorder"/>'s timeline.</summary>
    public StepScheduler(NotifierEventRecorder recorder)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        _recorder = recorder;
    }

    /// <summary>The actors started so far, by managed thread id.</summary>
    public IReadOnlyDictionary<int, string> ActorNames
    {
        get
        {
            lock (_sync)
            {
                return _actors.ToDictionary(pair => pair.Key, pair => pair.Value.Name);
            }
        }
    }

    /// <summary>Creates an actor running <paramref name="script"/> on its own thread; it waits for its first step.</summary>
    public HistoryActor Start(string name, Action script)
    {
        ArgumentNullException.ThrowIfNull(script);
        HistoryActor? actor = null;
        var thread = new Thread(() => Run(actor!, script)) { IsBackground = true, Name = $"history {name}" };
        actor = new HistoryActor(name, thread);
        lock (_sync)
        {
            _actors.Add(actor.ThreadId, actor);
        }

        thread.Start();
        return actor;
    }

    /// <summary>Makes the next pass of any actor through <paramref name="point"/> hold it there.</summary>
    public void Arm(HistoryPoint point)
    {
        lock (_sync)
        {
            _armed.Add(point);
        }
    }

    /// <summary>
    /// Called by actor code at <paramref name="point"/>: when the point is armed and the caller is an actor, disarms it
    /// and holds the caller until a step lets it go. Does nothing otherwise (any other thread, an unarmed point).
    /// </summary>
    public void Hold(HistoryPoint point)
    {
        lock (_sync)
        {
            if (!_actors.TryGetValue(Environment.CurrentManagedThreadId, out var actor) || !_armed.Remove(point))
            {
                return;
            }

            actor.ParkedAt = point;
            WaitForTurn(actor);
        }
    }

    /// <summary>Writes a step's mark into the timeline, from the scheduler's thread, before the step runs.</summary>
    public void Mark(string label) => _recorder.RecordHost(NotifierTraceKind.Mark, 0, Hva.Zero, Hva.Zero, label: label);

    /// <summary>Lets <paramref name="actor"/> run until it is held at <paramref name="point"/>, which must be armed.</summary>
    /// <exception cref="InvalidOperationException">The actor finished or failed before reaching the point.</exception>
    public void RunUntil(HistoryActor actor, HistoryPoint point)
    {
        Arm(point);
        Let(actor);
        WaitUntil(() => (IsHeld(actor) && actor.ParkedAt == point) || actor.Finished, $"{actor} to reach {point}");
        ThrowIfFailed(actor);
        if (actor.Finished)
        {
            throw new InvalidOperationException($"history scenario: {actor} finished without reaching {point}");
        }
    }

    /// <summary>
    /// Lets <paramref name="actor"/> run until it finishes, is held at an armed point, or <paramref name="blocked"/> says
    /// it waits inside the code under test. Returns true when it finished.
    /// </summary>
    public bool RunUntilFinishedOrBlocked(HistoryActor actor, Func<bool> blocked, string blockedWhat)
    {
        ArgumentNullException.ThrowIfNull(blocked);
        Let(actor);
        WaitUntil(() => actor.Finished || IsHeld(actor) || blocked(), $"{actor} to finish or {blockedWhat}");
        ThrowIfFailed(actor);
        return actor.Finished;
    }

    /// <summary>Lets <paramref name="actor"/> run until its script returns.</summary>
    public void RunToEnd(HistoryActor actor)
    {
        Let(actor);
        WaitUntil(() => actor.Finished, $"{actor} to finish");
        ThrowIfFailed(actor);
    }

    /// <summary>Waits (bounded) for an actor that is no longer held, e.g. one that was blocked in the code under test, to finish.</summary>
    public void AwaitEnd(HistoryActor actor)
    {
        WaitUntil(() => actor.Finished || IsHeld(actor), $"{actor} to finish");
        ThrowIfFailed(actor);
        if (!actor.Finished)
        {
            RunToEnd(actor);
        }
    }

    /// <summary>Lets go every actor still held (a failed scenario's clean-up) and waits for them, bounded.</summary>
    public void Drain()
    {
        lock (_sync)
        {
            _armed.Clear();
            foreach (var actor in _actors.Values)
            {
                actor.MayRun = true;
            }

            Monitor.PulseAll(_sync);
        }

        foreach (var actor in ActorsSnapshot())
        {
            actor.Thread.Join(StepTimeout);
        }
    }

    private HistoryActor[] ActorsSnapshot()
    {
        lock (_sync)
        {
            return [.. _actors.Values];
        }
    }

    private void Run(HistoryActor actor, Action script)
    {
        try
        {
            lock (_sync)
            {
                WaitForTurn(actor);
            }

            script();
        }
        catch (Exception exception)
        {
            actor.Failure = exception;
        }
        finally
        {
            lock (_sync)
            {
                actor.Finished = true;
                Monitor.PulseAll(_sync);
            }
        }
    }

    /// <summary>Holds the calling actor until a step lets it go. Caller holds <c>_sync</c>.</summary>
    private void WaitForTurn(HistoryActor actor)
    {
        actor.MayRun = false;
        actor.Waiting = true;
        Monitor.PulseAll(_sync);
        while (!actor.MayRun)
        {
            Monitor.Wait(_sync);
        }

        actor.Waiting = false;
        actor.ParkedAt = null;
    }

    private void Let(HistoryActor actor)
    {
        ArgumentNullException.ThrowIfNull(actor);
        WaitUntil(() => actor.Finished || IsHeld(actor), $"{actor} to be held");
        lock (_sync)
        {
            if (actor.Finished)
            {
                throw new InvalidOperationException($"history scenario: {actor} already finished; it cannot take another step");
            }

            actor.MayRun = true;
            Monitor.PulseAll(_sync);
        }
    }

    /// <summary>Waits, bounded, until <paramref name="condition"/> holds (checked under <c>_sync</c>, woken by every hold and finish, and polled).</summary>
    private void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = Environment.TickCount64 + (long)StepTimeout.TotalMilliseconds;
        lock (_sync)
        {
            while (!condition())
            {
                if (Environment.TickCount64 > deadline)
                {
                    throw new TimeoutException($"history scenario stuck: waited {StepTimeout.TotalSeconds:0} s for {what}");
                }

                Monitor.Wait(_sync, PollInterval);
            }
        }
    }

    /// <summary>True while the actor waits for a step and no step has let it go yet. Caller holds <c>_sync</c>.</summary>
    private static bool IsHeld(HistoryActor actor) => actor.Waiting && !actor.MayRun;

    private static void ThrowIfFailed(HistoryActor actor)
    {
        if (actor.Failure is { } failure)
        {
            throw new InvalidOperationException($"history scenario: {actor} failed: {failure.Message}", failure);
        }
    }
}

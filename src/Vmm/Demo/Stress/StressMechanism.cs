using System.Diagnostics;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// One host mechanism of the stress run, with its counters. A scheduled mechanism runs its operations on a thread of
/// its own, in the order the seed's <see cref="StressSchedule"/> gives, each inside the <see cref="HostOperationGate"/>;
/// a daemon's (reclaim, KSM) counters are the host's. To add a mechanism: a <see cref="StressMechanismKind"/>, its draw
/// in <see cref="StressSchedule.Draw"/> when it is scheduled, a subclass, and a line in <see cref="StressDemo"/>'s list.
/// </summary>
internal abstract class StressMechanism
{
    private const int SampleSize = 32;
    private readonly List<StressOperation> _sample = [];
    private long _operations;
    private long _effect;
    private Thread? _thread;

    /// <summary>Which mechanism.</summary>
    public abstract StressMechanismKind Kind { get; }

    /// <summary>Its name in the report.</summary>
    public abstract string Name { get; }

    /// <summary>What one operation is.</summary>
    public abstract string OperationName { get; }

    /// <summary>What <see cref="Effect"/> counts: the proof the mechanism reached guest memory.</summary>
    public abstract string EffectName { get; }

    /// <summary>Operations run so far.</summary>
    public virtual long Operations => Interlocked.Read(ref _operations);

    /// <summary>The mechanism's effect so far (see <see cref="EffectName"/>).</summary>
    public virtual long Effect => Interlocked.Read(ref _effect);

    /// <summary>Further figures, in words, for the report.</summary>
    public virtual string Detail => string.Empty;

    /// <summary>What stopped the mechanism's thread, if anything did.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>The first operations run, in order (the schedule's prefix this run reached).</summary>
    public IReadOnlyList<StressOperation> Sample
    {
        get
        {
            lock (_sample)
            {
                return [.. _sample];
            }
        }
    }

    /// <summary>Starts the mechanism's thread over <paramref name="operations"/> (none for a daemon); it is a track of <paramref name="trace"/>, if any.</summary>
    public void Start(IEnumerable<StressOperation> operations, HostOperationGate gate, CancellationToken stop, Tracing.TraceRecorder? trace)
    {
        var name = $"stress-{Kind}";
        _thread = new Thread(() =>
        {
            trace?.NameCurrentThread(name);
            Loop(operations, gate, stop);
        })
        { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Waits for the thread (after its stop token fired).</summary>
    public void Join() => _thread?.Join();

    /// <summary>The mechanism's figures now.</summary>
    public StressMechanismResult Snapshot(TimeSpan elapsed) => new()
    {
        Kind = Kind,
        Name = Name,
        OperationName = OperationName,
        Operations = Operations,
        OperationsPerSecond = elapsed > TimeSpan.Zero ? Operations / elapsed.TotalSeconds : 0,
        EffectName = EffectName,
        Effect = Effect,
        Detail = Detail,
        Sample = Sample,
    };

    /// <summary>Runs one operation; called inside the gate (shared unless <see cref="Exclusive"/>).</summary>
    protected abstract void Execute(in StressOperation operation, CancellationToken stop);

    /// <summary>
    /// Ends what an operation with a <see cref="StressOperation.HoldMilliseconds"/> keeps (a fork's child, a read-only
    /// window), after the hold; called inside the gate, shared. The hold itself is waited outside the gate, so audits and
    /// the other mechanisms go on meanwhile.
    /// </summary>
    protected virtual void EndHold(in StressOperation operation)
    {
    }

    /// <summary>Whether operations need the host to themselves (nothing else of the demo in flight).</summary>
    protected virtual bool Exclusive => false;

    /// <summary>Adds to <see cref="Effect"/>.</summary>
    protected void AddEffect(long amount) => Interlocked.Add(ref _effect, amount);

    private void Loop(IEnumerable<StressOperation> operations, HostOperationGate gate, CancellationToken stop)
    {
        try
        {
            foreach (var operation in operations)
            {
                if (stop.IsCancellationRequested)
                {
                    return;
                }

                var op = operation;
                if (Exclusive)
                {
                    gate.Exclusive(() => Execute(op, stop));
                }
                else
                {
                    gate.Shared(() => Execute(op, stop));
                }

                if (op.HoldMilliseconds > 0)
                {
                    // The hold ends even when the run is stopping: nothing is left read-only or forked.
                    stop.WaitHandle.WaitOne(op.HoldMilliseconds);
                    gate.Shared(() => EndHold(op));
                }

                Interlocked.Increment(ref _operations);
                lock (_sample)
                {
                    if (_sample.Count < SampleSize)
                    {
                        _sample.Add(op);
                    }
                }

                if (stop.WaitHandle.WaitOne(op.PauseMilliseconds))
                {
                    return;
                }
            }
        }
        catch (Exception exception)
        {
            Failure = exception;
            Debug.WriteLine($"stress mechanism {Kind} failed: {exception}");
        }
    }
}

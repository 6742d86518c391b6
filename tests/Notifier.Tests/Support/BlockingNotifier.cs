namespace Hypervisor.Notifier.Tests.Support;

/// <summary>
/// A subscriber whose start (and release) block until the test opens a gate, so tests can hold a callback
/// in flight and check what other operations do meanwhile.
/// </summary>
public sealed class BlockingNotifier : IMmuNotifier
{
    private readonly ManualResetEventSlim _entered = new();
    private readonly ManualResetEventSlim _gate = new();
    private int _inCallback;
    private int _releases;
    private int _starts;
    private int _ends;

    public bool BlockStarts { get; set; } = true;

    public bool BlockRelease { get; set; }

    public bool InCallback => Volatile.Read(ref _inCallback) != 0;

    public int Releases => Volatile.Read(ref _releases);

    public int Starts => Volatile.Read(ref _starts);

    public int Ends => Volatile.Read(ref _ends);

    public bool WaitEntered(TimeSpan timeout) => _entered.Wait(timeout);

    public void Open() => _gate.Set();

    public void Release(IMm mm)
    {
        Interlocked.Increment(ref _releases);
        if (BlockRelease)
        {
            Block();
        }
    }

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _starts);
        if (BlockStarts)
        {
            Block();
        }

        return true;
    }

    public void InvalidateRangeEnd(in NotifierRange range) => Interlocked.Increment(ref _ends);

    private void Block()
    {
        Volatile.Write(ref _inCallback, 1);
        _entered.Set();
        _gate.Wait(TimeSpan.FromSeconds(30));
        Volatile.Write(ref _inCallback, 0);
    }
}

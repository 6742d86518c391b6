namespace Hypervisor.Notifier.Tests.Support;

/// <summary>
/// A subscriber that counts its starts and releases, and runs <see cref="OnRelease"/> inside its release (to act in the
/// window a race needs: issue an invalidation, exit, synchronize).
/// </summary>
public sealed class ReleaseProbe : IMmuNotifier
{
    private int _starts;
    private int _releases;

    public Action? OnRelease { get; set; }

    public int Starts => Volatile.Read(ref _starts);

    public int Releases => Volatile.Read(ref _releases);

    public void Release(IMm mm)
    {
        Interlocked.Increment(ref _releases);
        OnRelease?.Invoke();
    }

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _starts);
        return true;
    }

    public void InvalidateRangeEnd(in NotifierRange range)
    {
    }
}

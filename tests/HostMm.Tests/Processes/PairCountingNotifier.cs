using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>A subscriber with start and end that counts both and the pairs still open (starts minus ends).</summary>
internal sealed class PairCountingNotifier : IMmuNotifier
{
    private int _starts;
    private int _ends;

    public int Starts => Volatile.Read(ref _starts);

    public int Ends => Volatile.Read(ref _ends);

    public int Open => Starts - Ends;

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _starts);
        return true;
    }

    public void InvalidateRangeEnd(in NotifierRange range) => Interlocked.Increment(ref _ends);
}

using Hypervisor.Notifier;
namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>In its release, checks from another thread whether a reverse-map walk could enter the process (take its mmap lock for read without waiting).</summary>
internal sealed class LockProbeNotifier : IMmuNotifier
{
    private readonly Mm _mm;

    public LockProbeNotifier(Mm mm) => _mm = mm;

    public bool? RmapWalkCouldEnter { get; private set; }

    public void Release(IMm mm)
    {
        RmapWalkCouldEnter = Task.Run(() =>
        {
            if (!_mm.TryEnterRmapRead(out var taken))
            {
                return false;
            }

            if (taken)
            {
                _mm.ExitRmapRead();
            }

            return true;
        }).Result;
    }
}

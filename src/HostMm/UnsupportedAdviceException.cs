namespace Hypervisor.HostMm;

/// <summary>A madvise advice the host does not implement yet.</summary>
public sealed class UnsupportedAdviceException : NotSupportedException
{
    /// <summary>Creates the exception naming the advice and what will bring it.</summary>
    public UnsupportedAdviceException(Advice advice, string arrivesWith)
        : base($"madvise {advice} is not supported yet: it arrives with {arrivesWith}")
    {
        Advice = advice;
    }

    /// <summary>The refused advice.</summary>
    public Advice Advice { get; }
}

namespace Hypervisor.HostMm;

/// <summary>A madvise advice the host does not implement yet. Bad input (<see cref="HostMmRule.UnsupportedAdvice"/>).</summary>
public sealed class UnsupportedAdviceException : NotSupportedException, IInputError
{
    /// <summary>Creates the exception naming the advice and what will bring it.</summary>
    public UnsupportedAdviceException(Advice advice, string arrivesWith)
        : base($"madvise {advice} is not supported yet: it arrives with {arrivesWith}")
    {
        Advice = advice;
    }

    /// <summary>The refused advice.</summary>
    public Advice Advice { get; }

    /// <summary>The rule that was broken: always <see cref="HostMmRule.UnsupportedAdvice"/>.</summary>
    public HostMmRule Rule => HostMmRule.UnsupportedAdvice;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}

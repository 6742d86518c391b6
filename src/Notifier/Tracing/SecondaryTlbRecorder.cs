namespace Hypervisor.Notifier.Tracing;

/// <summary>
/// A subscriber implementing only <see cref="IMmuNotifier.InvalidateSecondaryTlbs"/> (the IOMMU-SVA
/// style), writing into a <see cref="NotifierEventRecorder"/>'s timeline.
/// </summary>
public sealed class SecondaryTlbRecorder : IMmuNotifier
{
    private readonly NotifierEventRecorder _recorder;

    /// <summary>Creates a recorder that writes into <paramref name="recorder"/>.</summary>
    public SecondaryTlbRecorder(NotifierEventRecorder recorder)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        _recorder = recorder;
    }

    /// <inheritdoc />
    public void InvalidateSecondaryTlbs(IMm mm, Hva start, Hva end) => _recorder.RecordSecondaryTlbs(mm, start, end);
}

using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Diagnostics;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>Passes every secondary-MMU event to two sinks in turn (the logger, then the timeline), timed overloads as such.</summary>
/// <param name="first">The first sink.</param>
/// <param name="second">The second sink.</param>
public sealed class FanOutMmuTrace(IMmuTrace first, IMmuTrace second) : IMmuTrace
{
    /// <summary>Combines <paramref name="first"/> and <paramref name="second"/>, either of which may be null; null when both are.</summary>
    public static IMmuTrace? Of(IMmuTrace? first, IMmuTrace? second) =>
        first is null ? second : second is null ? first : new FanOutMmuTrace(first, second);

    /// <inheritdoc />
    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result)
    {
        first.PageFault(gpa, access, result);
        second.PageFault(gpa, access, result);
    }

    /// <inheritdoc />
    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result, long startTimestamp)
    {
        first.PageFault(gpa, access, result, startTimestamp);
        second.PageFault(gpa, access, result, startTimestamp);
    }

    /// <inheritdoc />
    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped)
    {
        first.UnmapHvaRange(start, end, notifierEvent, zapped);
        second.UnmapHvaRange(start, end, notifierEvent, zapped);
    }

    /// <inheritdoc />
    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped, long startTimestamp)
    {
        first.UnmapHvaRange(start, end, notifierEvent, zapped, startTimestamp);
        second.UnmapHvaRange(start, end, notifierEvent, zapped, startTimestamp);
    }

    /// <inheritdoc />
    public void FlushRemoteTlbs(long startTimestamp)
    {
        first.FlushRemoteTlbs(startTimestamp);
        second.FlushRemoteTlbs(startTimestamp);
    }

    /// <inheritdoc />
    public void AgeHva(Hva start, Hva end, bool young)
    {
        first.AgeHva(start, end, young);
        second.AgeHva(start, end, young);
    }

    /// <inheritdoc />
    public void TestAgeHva(Hva hva, bool young)
    {
        first.TestAgeHva(hva, young);
        second.TestAgeHva(hva, young);
    }

    /// <inheritdoc />
    public void SetSpteHva(Hva hva, bool hit)
    {
        first.SetSpteHva(hva, hit);
        second.SetSpteHva(hva, hit);
    }

    /// <inheritdoc />
    public void Release(long zapped)
    {
        first.Release(zapped);
        second.Release(zapped);
    }
}

namespace Hypervisor.Notifier.Tests.Support;

/// <summary>Short-hands for building ranges in tests.</summary>
public static class Ranges
{
    public static Hva Page(ulong index) => new(index * Paging.PageSize);

    public static NotifierRange Of(IMm mm, ulong firstPage, ulong pages, NotifierEvent notifierEvent = NotifierEvent.Clear, bool blockable = true) =>
        new(mm, Page(firstPage), Page(firstPage + pages), notifierEvent, blockable);

    /// <summary>Issues start then end on the mm's chain and returns what start answered.</summary>
    public static bool StartEnd(IMm mm, ulong firstPage, ulong pages, NotifierEvent notifierEvent = NotifierEvent.Clear)
    {
        var range = Of(mm, firstPage, pages, notifierEvent);
        if (!mm.Notifiers.InvalidateRangeStart(ref range))
        {
            return false;
        }

        mm.Notifiers.InvalidateRangeEnd(ref range);
        return true;
    }
}

namespace Hypervisor.Notifier;

/// <summary>Work in progress: the per-mm notifier chain.</summary>
public sealed class MmuNotifierChain
{
    /// <summary>Creates the chain of <paramref name="mm"/>.</summary>
    public MmuNotifierChain(IMm mm) => Mm = mm;

    /// <summary>The mm this chain belongs to.</summary>
    public IMm Mm { get; }

    /// <summary>Lists <paramref name="notifier"/>.</summary>
    public MmuNotifierSubscription Register(IMmuNotifier notifier) => throw new NotImplementedException();

    /// <summary>Unlists.</summary>
    public void Unregister(MmuNotifierSubscription subscription) => throw new NotImplementedException();

    /// <summary>get.</summary>
    public MmuNotifierSubscription Get(IMmuNotifierAllocator allocator) => throw new NotImplementedException();

    /// <summary>put.</summary>
    public void Put(MmuNotifierSubscription subscription) => throw new NotImplementedException();

    /// <summary>start.</summary>
    public bool InvalidateRangeStart(ref NotifierRange range) => throw new NotImplementedException();

    /// <summary>end.</summary>
    public void InvalidateRangeEnd(ref NotifierRange range) => throw new NotImplementedException();

    /// <summary>exit.</summary>
    public void Release() => throw new NotImplementedException();
}

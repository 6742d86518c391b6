namespace Hypervisor.Notifier.OpVisitors;

/// <summary>test_young: asks subscribers in list order and stops at the first that answers young.</summary>
internal struct TestYoungVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _address;

    /// <summary>Creates the visitor for <paramref name="address"/> of <paramref name="mm"/>.</summary>
    public TestYoungVisitor(IMm mm, Hva address)
    {
        _mm = mm;
        _address = address;
        Young = false;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.TestYoung;

    /// <summary>True when a subscriber answered young (the walk stopped there).</summary>
    public bool Young { readonly get; private set; }

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        if (subscription.Notifier.TestYoung(_mm, _address))
        {
            Young = true;
            return false;
        }

        return true;
    }
}

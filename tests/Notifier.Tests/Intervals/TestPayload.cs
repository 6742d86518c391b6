namespace Hypervisor.Notifier.Tests.Intervals;

/// <summary>A value stored in test trees; identity matters, the id is for messages.</summary>
public sealed class TestPayload(int id)
{
    public int Id { get; } = id;

    public override string ToString() => "#" + Id;
}

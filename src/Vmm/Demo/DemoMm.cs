using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// A stand-in host process for demonstrations: an id and a notifier chain, no memory. The host memory
/// manager's <c>Mm</c> replaces it once it exists.
/// </summary>
internal sealed class DemoMm : IMm
{
    /// <summary>Creates mm <paramref name="id"/> with an empty chain.</summary>
    public DemoMm(int id)
    {
        Id = id;
        Notifiers = new MmuNotifierChain(this);
    }

    /// <inheritdoc />
    public int Id { get; }

    /// <inheritdoc />
    public MmuNotifierChain Notifiers { get; }

    /// <inheritdoc />
    public override string ToString() => $"demo mm {Id}";
}

using Hypervisor.Notifier;
namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// The identity under which the replayed races' secondary MMU knows its backing process. It carries the real process's
/// id but a private chain that nothing drives: the MMU's own registration (made when its memslot is set) lands there,
/// and the real chain reaches the MMU only through <see cref="SecondaryMmuInterposer"/>, which names this view in what
/// it forwards. So every callback the real chain delivers still reaches the real MMU, and the scheduler can hold one at
/// its entry.
/// </summary>
internal sealed class SecondaryMmuView : IMm
{
    /// <summary>Creates the view of <paramref name="process"/>.</summary>
    public SecondaryMmuView(IMm process)
    {
        ArgumentNullException.ThrowIfNull(process);
        Id = process.Id;
        Notifiers = new MmuNotifierChain(this);
    }

    /// <inheritdoc />
    public int Id { get; }

    /// <inheritdoc />
    public MmuNotifierChain Notifiers { get; }
}

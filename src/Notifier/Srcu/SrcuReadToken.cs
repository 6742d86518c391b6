namespace Hypervisor.Notifier.Srcu;

/// <summary>Proof of an open read-side section; hand it back to <see cref="SrcuDomain.ReadUnlock"/>.</summary>
public readonly struct SrcuReadToken
{
    internal SrcuReadToken(int slot) => Slot = slot;

    /// <summary>Index of the reader counter the section incremented.</summary>
    internal int Slot { get; }
}

namespace Hypervisor.GuestMmu.Ept;

/// <summary>Returned by <see cref="EptVectorPath.Force"/>: puts the previous path back when disposed.</summary>
internal readonly struct EptVectorPathScope(EptVectorWidth previous) : IDisposable
{
    /// <summary>Restores the path that was in use before the force.</summary>
    public void Dispose() => EptVectorPath.Current = previous;
}

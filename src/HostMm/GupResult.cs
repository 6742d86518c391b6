namespace Hypervisor.HostMm;

/// <summary>
/// What <see cref="Mm.GetUserPages"/> resolved: the frame backing an address and whether the host maps it
/// writable. When <see cref="Fault"/> is a success the caller holds one short-term reference on
/// <see cref="Pfn"/> and must drop it with <see cref="Mm.ReleasePage"/> as soon as it has used the frame —
/// never keep it: secondary MMUs stay coherent through notifiers, not pins.
/// </summary>
/// <param name="Fault">How the address was resolved; <see cref="FaultResult.SegmentationFault"/> or
/// <see cref="FaultResult.ProtectionViolation"/> mean no frame (and no reference).</param>
/// <param name="Pfn">The backing frame.</param>
/// <param name="Writable">True when the host PTE allows writes now.</param>
public readonly record struct GupResult(FaultResult Fault, Pfn Pfn, bool Writable)
{
    /// <summary>True when a frame was resolved (and a reference taken).</summary>
    public bool Succeeded => Fault is not (FaultResult.SegmentationFault or FaultResult.ProtectionViolation);
}

namespace Hypervisor.HostMm;

/// <summary>
/// What <see cref="Mm.GetUserPages"/> resolved: the frame backing an address and whether the host maps it
/// writable. When <see cref="Fault"/> is a success the caller holds one short-term reference on
/// <see cref="Pfn"/> and must drop it with <see cref="Mm.ReleasePage"/> as soon as it has used the frame —
/// never keep it: secondary MMUs stay coherent through notifiers, not pins.
/// </summary>
/// <param name="Fault">How the address was resolved; <see cref="FaultResult.SegmentationFault"/>,
/// <see cref="FaultResult.ProtectionViolation"/>, <see cref="FaultResult.OutOfMemory"/> and
/// <see cref="FaultResult.MemoryFailure"/> mean no frame (and no reference).</param>
/// <param name="Pfn">The backing frame.</param>
/// <param name="Writable">True when the host PTE allows writes now.</param>
public readonly record struct GupResult(FaultResult Fault, Pfn Pfn, bool Writable)
{
    /// <summary>True when a frame was resolved (and a reference taken).</summary>
    public bool Succeeded => !IsFailure(Fault);

    /// <summary>For <see cref="FaultResult.MemoryFailure"/>: the swap slot and the cause.</summary>
    public FaultFailure Failure { get; init; }

    /// <summary>
    /// True when the host maps the page with a 2 MiB huge leaf (KVM's <c>host_pfn_mapping_level</c> reads the host page
    /// table for this): a secondary MMU may then map the whole 2 MiB with one leaf where its own alignment allows.
    /// </summary>
    public bool HostHuge { get; init; }

    /// <summary>True for the outcomes that map nothing.</summary>
    public static bool IsFailure(FaultResult fault) =>
        fault is FaultResult.SegmentationFault or FaultResult.ProtectionViolation or FaultResult.OutOfMemory or FaultResult.MemoryFailure;
}

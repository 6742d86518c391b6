namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The outcome of an <see cref="MmuContext"/> memory access. <see cref="Status"/> is
/// <see cref="TranslationStatus.Ok"/> when every byte was transferred; otherwise <see cref="Fault"/> describes
/// the first page that stopped it and <see cref="BytesDone"/> says how many leading bytes were transferred
/// (always 0 for a page fault, a non-canonical address or an error: the access is all or nothing; for
/// <see cref="TranslationStatus.EptMmio"/>, the RAM bytes before the MMIO gpa, which the caller emulates from).
/// </summary>
/// <param name="Status">How the access ended.</param>
/// <param name="BytesDone">Leading bytes transferred.</param>
/// <param name="Fault">The translation that stopped the access (default when <paramref name="Status"/> is Ok).</param>
public readonly record struct AccessResult(TranslationStatus Status, int BytesDone, TranslationResult Fault)
{
    /// <summary>True when every byte was transferred.</summary>
    public bool IsOk => Status == TranslationStatus.Ok;
}

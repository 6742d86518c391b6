namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The outcome of one two-dimensional walk. Only the members that belong to <see cref="Status"/> are
/// meaningful: <see cref="TranslationStatus.Ok"/> — <see cref="Gpa"/>, <see cref="HostAddress"/>,
/// <see cref="PageSize"/>, <see cref="Permissions"/>, <see cref="Global"/>; <see cref="TranslationStatus.PageFault"/>
/// — <see cref="ErrorCode"/>, <see cref="Gva"/> (CR2); <see cref="TranslationStatus.EptMmio"/> — <see cref="Gpa"/>;
/// <see cref="TranslationStatus.Error"/> — <see cref="Error"/> and <see cref="Gpa"/> (the gpa that failed).
/// </summary>
public readonly record struct TranslationResult
{
    /// <summary>How the walk ended.</summary>
    public TranslationStatus Status { get; init; }

    /// <summary>The translated address.</summary>
    public Gva Gva { get; init; }

    /// <summary>The guest-physical address of the accessed byte (or of the page-table entry that failed, for errors).</summary>
    public Gpa Gpa { get; init; }

    /// <summary>The host address of the accessed byte (valid until this vCPU next services a TLB flush request).</summary>
    public nint HostAddress { get; init; }

    /// <summary>The guest page size: 4 KiB, 2 MiB or 1 GiB (host backing is always handled per 4 KiB frame).</summary>
    public ulong PageSize { get; init; }

    /// <summary>What the access class of the walk may do on this page without another walk.</summary>
    public PagePermissions Permissions { get; init; }

    /// <summary>The leaf's G bit with CR4.PGE set: the translation survives CR3 writes.</summary>
    public bool Global { get; init; }

    /// <summary>The #PF error code.</summary>
    public PageFaultErrorCode ErrorCode { get; init; }

    /// <summary>Why the VM cannot continue.</summary>
    public WalkError Error { get; init; }

    /// <summary>True for <see cref="TranslationStatus.Ok"/>.</summary>
    public bool IsOk => Status == TranslationStatus.Ok;

    /// <summary>The host pointer of the accessed byte.</summary>
    public unsafe byte* Host => (byte*)HostAddress; // unsafe: the result carries a raw host pointer by design.

    /// <summary>A guest page fault at <paramref name="gva"/>.</summary>
    public static TranslationResult PageFault(Gva gva, PageFaultErrorCode errorCode) =>
        new() { Status = TranslationStatus.PageFault, Gva = gva, ErrorCode = errorCode };

    /// <summary>A VM error at <paramref name="gpa"/>.</summary>
    public static TranslationResult Failure(Gva gva, Gpa gpa, WalkError error) =>
        new() { Status = TranslationStatus.Error, Gva = gva, Gpa = gpa, Error = error };

    /// <summary>Describes the result.</summary>
    public override string ToString() => Status switch
    {
        TranslationStatus.Ok => $"{Gva} -> {Gpa} host 0x{HostAddress:x} size 0x{PageSize:x} {Permissions}{(Global ? " global" : "")}",
        TranslationStatus.PageFault => $"#PF at {Gva} error code 0x{(uint)ErrorCode:x} ({ErrorCode})",
        TranslationStatus.EptMmio => $"{Gva} -> {Gpa}: MMIO",
        TranslationStatus.NonCanonical => $"{Gva} is not canonical: #GP",
        _ => $"{Gva}: VM error {Error} at {Gpa}",
    };
}

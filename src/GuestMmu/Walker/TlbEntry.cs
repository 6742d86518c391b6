namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// One soft-TLB entry (32 bytes, QEMU's <c>CPUTLBEntry</c>): a comparator per access kind and the addend.
/// A comparator is <c>gva page | generation</c> when that kind is allowed, <see cref="SoftTlb.InvalidTag"/>
/// otherwise; bit 11 of the generation tells a global entry from a non-global one.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TlbEntry
{
    /// <summary>Comparator for data reads (kind 0).</summary>
    public ulong TagRead;

    /// <summary>Comparator for data writes (kind 1).</summary>
    public ulong TagWrite;

    /// <summary>Comparator for instruction fetches (kind 2).</summary>
    public ulong TagExecute;

    /// <summary>Host address minus guest-virtual address, for every byte of the page.</summary>
    public nint Addend;
}

using System.Text.RegularExpressions;
using Hypervisor.HostMm;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// What the demos know of the ksm sample guest (guests/ksm.c): the seed of each page's xorshift content after its
/// rewrite, its console lines, and a host read-back that checks every page against them.
/// </summary>
internal static partial class KsmGuestPages
{
    /// <summary>The seed of page <paramref name="page"/> after the rewrite (guests/ksm.c, seed_of): 1 page in <paramref name="every"/> carries the guest's <paramref name="salt"/>, the others one of <paramref name="kinds"/> shared contents.</summary>
    public static ulong SeedOf(ulong page, int every, int kinds, int salt = 0) => page % (ulong)every == 0
        ? 0x5151000000000000UL + page + ((ulong)salt << 24)
        : 0xC0FFEE0000000000UL + (page % (ulong)kinds);

    /// <summary>
    /// Reads <paramref name="pages"/> pages of the guest (salt 0) from <paramref name="guestBase"/> through the host and
    /// counts those not holding the guest's last writes, or unreadable.
    /// </summary>
    public static (long Checked, long Corrupted) ReadBack(GuestRam ram, ulong guestBase, long pages, int every, int kinds)
    {
        Span<byte> page = stackalloc byte[(int)Paging.PageSize];
        long corrupted = 0;
        for (var p = 0UL; p < (ulong)pages; p++)
        {
            try
            {
                ram.Read(guestBase + (p * Paging.PageSize), page);
            }
            catch (Exception exception) when (exception is MemoryFailureException or OutOfMemoryFaultException or HostFaultException)
            {
                corrupted++;
                continue;
            }

            var state = SeedOf(p, every, kinds);
            corrupted += XorshiftPattern.Matches(page, ref state) ? 0 : 1;
        }

        return (pages, corrupted);
    }

    /// <summary>"ksm: N pages at 0xBASE": group 1 the page count, group 2 the guest-physical base.</summary>
    [GeneratedRegex(@"^ksm: (\d+) pages at 0x([0-9a-f]+)")]
    public static partial Regex PagesAt();

    /// <summary>"ksm: rewrote N pages": group 1 the count.</summary>
    [GeneratedRegex(@"^ksm: rewrote (\d+) pages")]
    public static partial Regex RewroteLine();
}

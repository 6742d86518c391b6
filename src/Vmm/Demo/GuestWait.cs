using System.Diagnostics;
using System.Globalization;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo;

/// <summary>A demo's wait for its guest to reach a point, bounded by the VM stopping and by a timeout.</summary>
internal static class GuestWait
{
    /// <summary>
    /// Polls <paramref name="reached"/> every <paramref name="poll"/> until it holds, the VM stops or <paramref name="timeout"/>
    /// passes; returns what went wrong (naming <paramref name="what"/> the guest was to do), or null.
    /// </summary>
    public static string? Until(Vm vm, Func<bool> reached, string what, TimeSpan timeout, TimeSpan poll)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!reached())
        {
            if (vm.Progress().Kind != VmStopKind.Running)
            {
                return $"the VM stopped before the guest {what}: {vm.Progress().Detail}";
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                return string.Create(CultureInfo.InvariantCulture, $"the guest had not {what} after {timeout.TotalSeconds:0} s");
            }

            Thread.Sleep(poll);
        }

        return null;
    }
}

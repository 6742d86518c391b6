namespace Hypervisor.Vmm.Tests.Support;

/// <summary>
/// The NUnit categories of the test suite, so a fast unit run is one filter:
/// <c>dotnet test Hypervisor.sln --filter "TestCategory!=Guest&amp;TestCategory!=Kvm"</c>.
/// </summary>
internal static class TestCategories
{
    /// <summary>Boots a sample guest image from <c>guests/build</c> (built with make and gcc on first use).</summary>
    public const string Guest = "Guest";

    /// <summary>Needs /dev/kvm (ignored with the reason where it cannot be used).</summary>
    public const string Kvm = "Kvm";

    /// <summary>
    /// The Linux guest's longer runs (several boots of Debian's kernel, each a minute in a Debug build), <c>[Explicit]</c>:
    /// only <c>--filter TestCategory=Linux</c> runs them (with <c>-c Release</c>, about four minutes).
    /// </summary>
    public const string Linux = "Linux";

    /// <summary>Long runs, <c>[Explicit]</c>: only <c>--filter TestCategory=Stress</c> runs them.</summary>
    public const string Stress = "Stress";
}

using System.Globalization;

namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>What <see cref="KsmDemo"/> runs: how many VMs, the ksm guest's pages, ksmd's knobs and the change_pte mode.</summary>
public sealed record KsmDemoOptions
{
    /// <summary>The fewest VMs: merging across VMs needs two.</summary>
    public const int MinVms = 2;

    /// <summary>The most VMs.</summary>
    public const int MaxVms = 16;

    /// <summary>The most pages the ksm guest fills (its own limit, 256 MiB).</summary>
    public const int MaxPages = 65536;

    /// <summary>VMs booted from the same image with the same data.</summary>
    public int Vms { get; init; } = 4;

    /// <summary>Each VM's guest RAM.</summary>
    public ulong GuestBytes { get; init; } = 48UL << 20;

    /// <summary>Pages each guest fills with <see cref="Kinds"/> repeated contents.</summary>
    public int Pages { get; init; } = 4096;

    /// <summary>Distinct contents among the filled pages.</summary>
    public int Kinds { get; init; } = 4;

    /// <summary>Every this-many-th page is rewritten with a VM-unique content after merging (breaking it copy-on-write).</summary>
    public int Every { get; init; } = 8;

    /// <summary>ksmd's <c>pages_to_scan</c>.</summary>
    public int PagesToScan { get; init; } = 2000;

    /// <summary>ksmd's <c>sleep_millisecs</c>.</summary>
    public int SleepMilliseconds { get; init; } = 5;

    /// <summary>The host calls change_pte as Linux 2.6.32–6.9 did, so the demo can count how often the EPT MMU had an spte to change (default on).</summary>
    public bool LegacyChangePte { get; init; } = true;

    /// <summary>Audit the host and every VM's secondary MMU after every ksmd batch (the default); off only to time the demo.</summary>
    public bool AuditEveryStep { get; init; } = true;

    /// <summary>The longest wait for the scanner to settle, or for every VM to reach a phase.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Where the demo's timeline is recorded (<c>--trace FILE</c>), or null.</summary>
    public Hypervisor.Vmm.Tracing.TraceRecorder? Trace { get; init; }

    /// <summary>Checks every rule.</summary>
    /// <exception cref="KsmDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        var c = CultureInfo.InvariantCulture;
        if (Vms < MinVms || Vms > MaxVms)
        {
            throw new KsmDemoOptionsException(nameof(Vms), string.Create(c, $"the KSM demo runs {MinVms} to {MaxVms} VMs (merging across VMs needs two), got {Vms}"));
        }

        if (Pages < 1 || Pages > MaxPages)
        {
            throw new KsmDemoOptionsException(nameof(Pages), string.Create(c, $"each guest fills 1 to {MaxPages} pages, got {Pages}"));
        }

        // The guest puts its pages at the first MiB boundary after its image (under 2 MiB) and needs them below RAM's end.
        var needed = (4UL << 20) + ((ulong)Pages * 4096);
        if (GuestBytes < needed || GuestBytes > (1UL << 30) || GuestBytes % 4096 != 0)
        {
            throw new KsmDemoOptionsException(nameof(GuestBytes), string.Create(c, $"guest RAM must be a multiple of 4 KiB from {needed >> 20} MiB (the image and {Pages} pages) to 1024 MiB, got {GuestBytes} bytes"));
        }

        if (Kinds < 1 || Kinds > Pages)
        {
            throw new KsmDemoOptionsException(nameof(Kinds), string.Create(c, $"kinds must be 1 to the page count ({Pages}), got {Kinds}"));
        }

        if (Every < 2 || Every > Pages)
        {
            throw new KsmDemoOptionsException(nameof(Every), string.Create(c, $"every must be 2 to the page count ({Pages}): some merged pages are rewritten and some stay merged, got {Every}"));
        }

        if (PagesToScan < 1 || PagesToScan > Machine.VmOptions.MaxKsmPagesToScan || SleepMilliseconds < 0 || SleepMilliseconds > Machine.VmOptions.MaxKsmSleepMilliseconds)
        {
            throw new KsmDemoOptionsException(nameof(PagesToScan), string.Create(c, $"pages_to_scan must be 1 to {Machine.VmOptions.MaxKsmPagesToScan} and sleep_millisecs 0 to {Machine.VmOptions.MaxKsmSleepMilliseconds}, got {PagesToScan} and {SleepMilliseconds}"));
        }

        if (PhaseTimeout <= TimeSpan.Zero)
        {
            throw new KsmDemoOptionsException(nameof(PhaseTimeout), string.Create(c, $"the phase timeout must be positive, got {PhaseTimeout}"));
        }
    }
}

using System.Globalization;

namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>
/// What <see cref="DmaDemo"/> runs: the dmatest guest's buffers, rounds and passes, and how often the host's pressure
/// thread strikes the buffers.
/// </summary>
public sealed record DmaDemoOptions
{
    /// <summary>The most buffers of each kind (the guest's own limit).</summary>
    public const int MaxBuffers = 64;

    /// <summary>The most pages per buffer (the guest's own limit).</summary>
    public const int MaxPagesPerBuffer = 64;

    /// <summary>Guest RAM.</summary>
    public ulong GuestBytes { get; init; } = 32UL << 20;

    /// <summary>Source buffers (and as many destinations) the guest copies between.</summary>
    public int Buffers { get; init; } = 8;

    /// <summary>Pages per buffer.</summary>
    public int PagesPerBuffer { get; init; } = 4;

    /// <summary>Rounds: each refills the sources with a new pattern.</summary>
    public int Rounds { get; init; } = 30;

    /// <summary>Copy-and-verify passes per round (the time the host has to strike between copies of equal data).</summary>
    public int Passes { get; init; } = 3;

    /// <summary>The seed of the guest's pattern and of the pressure thread's choices.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The pause of the host's pressure thread between two operations.</summary>
    public TimeSpan PressureInterval { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The longest a phase may run before the demo gives up on it.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Where the sample guest images are (null: <c>guests/build</c> of the repository).</summary>
    public string? GuestsFolder { get; init; }

    /// <summary>Checks every rule.</summary>
    /// <exception cref="DmaDemoOptionsException">A value breaks its rule (the message names it).</exception>
    public void Validate()
    {
        var c = CultureInfo.InvariantCulture;
        if (Buffers < 2 || Buffers > MaxBuffers)
        {
            throw new DmaDemoOptionsException(nameof(Buffers), string.Create(c, $"the guest copies between 2 and {MaxBuffers} buffers, got {Buffers}"));
        }

        if (PagesPerBuffer < 1 || PagesPerBuffer > MaxPagesPerBuffer)
        {
            throw new DmaDemoOptionsException(nameof(PagesPerBuffer), string.Create(c, $"a buffer holds 1 to {MaxPagesPerBuffer} pages, got {PagesPerBuffer}"));
        }

        if (Rounds < 1 || Rounds > 100_000)
        {
            throw new DmaDemoOptionsException(nameof(Rounds), string.Create(c, $"the guest runs 1 to 100000 rounds, got {Rounds}"));
        }

        if (Passes < 1 || Passes > 1000)
        {
            throw new DmaDemoOptionsException(nameof(Passes), string.Create(c, $"the guest makes 1 to 1000 passes per round, got {Passes}"));
        }

        // The guest puts its buffers at the first MiB boundary after its image (under 2 MiB) and needs them below RAM's end.
        var needed = (4UL << 20) + (2UL * (ulong)Buffers * (ulong)PagesPerBuffer * 4096);
        if (GuestBytes < needed || GuestBytes > (1UL << 30) || GuestBytes % 4096 != 0)
        {
            throw new DmaDemoOptionsException(nameof(GuestBytes), string.Create(c, $"guest RAM must be a multiple of 4 KiB from {needed >> 20} MiB (the image and the buffers) to 1024 MiB, got {GuestBytes} bytes"));
        }

        if (PressureInterval < TimeSpan.Zero || PressureInterval > TimeSpan.FromSeconds(1))
        {
            throw new DmaDemoOptionsException(nameof(PressureInterval), string.Create(c, $"the pressure thread pauses 0 to 1000 ms between operations, got {PressureInterval.TotalMilliseconds} ms"));
        }

        if (PhaseTimeout <= TimeSpan.Zero)
        {
            throw new DmaDemoOptionsException(nameof(PhaseTimeout), string.Create(c, $"the phase timeout must be positive, got {PhaseTimeout}"));
        }
    }
}

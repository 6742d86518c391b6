namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// One VM's bounded sample buffer in a <see cref="CounterHistory"/>: at most <c>capacity</c> samples; when full, every
/// other sample is dropped and only every <see cref="Stride"/>-th sampler tick is kept from then on, so a track always
/// covers the VM's whole life at a step that grows with it. Not thread-safe: the history's lock guards it.
/// </summary>
internal sealed class CounterTrack
{
    private readonly CounterSample[] _samples;
    private int _count;
    private long _ticks;

    /// <summary>Creates an empty track of <paramref name="capacity"/> samples (even, at least 2).</summary>
    public CounterTrack(int id, string label, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        Id = id;
        Label = label;
        _samples = new CounterSample[capacity & ~1];
    }

    /// <summary>The VM's number in the history.</summary>
    public int Id { get; }

    /// <summary>What the VM was.</summary>
    public string Label { get; set; }

    /// <summary>The watched figure's name; null when the VM has none.</summary>
    public string? WatchedName { get; private set; }

    /// <summary>Reads the watched figure; null when the VM has none.</summary>
    public Func<long>? Watched { get; private set; }

    /// <summary>Sets the watched figure (from the next sample on; earlier samples read -1).</summary>
    public void Watch(string name, Func<long> read)
    {
        WatchedName = name;
        Watched = read;
    }

    /// <summary>Sampler ticks per kept sample: 1, doubled each time the buffer was thinned.</summary>
    public int Stride { get; private set; } = 1;

    /// <summary>Offers the sampler's periodic sample: kept when this tick falls on the stride.</summary>
    public void Tick(in CounterSample sample)
    {
        if (_ticks++ % Stride == 0)
        {
            Add(sample);
        }
    }

    /// <summary>Keeps <paramref name="sample"/> whatever the stride (the first and the last of a VM).</summary>
    public void Add(in CounterSample sample)
    {
        if (_count == _samples.Length)
        {
            Thin();
        }

        _samples[_count++] = sample;
    }

    /// <summary>A copy of the samples, oldest first.</summary>
    public CounterSample[] ToArray() => _samples.AsSpan(0, _count).ToArray();

    private void Thin()
    {
        // Keeps samples 0, 2, 4, …: the first sample stays, the step doubles.
        var kept = 0;
        for (var i = 0; i < _count; i += 2)
        {
            _samples[kept++] = _samples[i];
        }

        _count = kept;
        Stride *= 2;
    }
}

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// One run of contiguous swap slots handed to <see cref="SwapWriteback"/>: the frames (each locked, isolated, unmapped,
/// clean and in the swap cache) in slot order, the lruvec they were isolated from, and the
/// reclaim call that waits for them.
/// </summary>
internal struct WritebackRun
{
    /// <summary>The slot of the first frame; frame <c>i</c> goes to <c>FirstSlot + i</c>.</summary>
    public ulong FirstSlot;

    /// <summary>Frames in the run (1 to <see cref="WritebackFrames.Capacity"/>).</summary>
    public int Count;

    /// <summary>The lruvec the frames were isolated from (their put-back goes to the one they belong to then).</summary>
    public Lruvec Lruvec;

    /// <summary>The reclaim call that submitted the run and drains it.</summary>
    public WritebackTicket Ticket;

    /// <summary>The frames, <see cref="Count"/> of them.</summary>
    public WritebackFrames Frames;
}

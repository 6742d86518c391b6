namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The VM's interrupt bus between local APICs: carries an IPI to the APICs its destination names — a physical APIC id
/// (0xFF, or 0xFFFFFFFF in x2APIC mode, is every APIC), a logical destination matched against each APIC's LDR/DFR, or a
/// shorthand (self, all including self, all excluding self) — and hands each target the message by delivery mode.
/// Lowest priority goes to the lowest-numbered matching APIC. INIT and start-up are recorded on the target APIC for a
/// future application-processor start (no AP thread is started here); a start-up IPI to a running processor is ignored.
/// A message whose destination matches no APIC is dropped and counted.
/// </summary>
/// <remarks>Thread-safe; allocates nothing per message.</remarks>
public sealed class InterruptRouter
{
    private readonly LocalApic[] _apics;
    private long _delivered;
    private long _missed;
    private long _ignored;

    /// <summary>Creates <paramref name="cpuCount"/> APICs with ids 0 to <paramref name="cpuCount"/> − 1; APIC 0 is the bootstrap processor.</summary>
    /// <param name="cpuCount">1 to 256.</param>
    /// <exception cref="ArgumentOutOfRangeException">The count is outside 1–256.</exception>
    public InterruptRouter(int cpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpuCount, 256);
        _apics = new LocalApic[cpuCount];
        for (var id = 0; id < cpuCount; id++)
        {
            _apics[id] = new LocalApic(id, bootstrap: id == 0) { Router = this };
        }
    }

    /// <summary>The APICs, index = APIC id = vCPU id.</summary>
    public IReadOnlyList<LocalApic> Apics => _apics;

    /// <summary>Messages handed to a target APIC (one per target).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Messages whose destination matched no APIC (a missing APIC id, an empty logical destination).</summary>
    public long MissedDestinations => Interlocked.Read(ref _missed);

    /// <summary>Messages a target ignored or that do nothing: INIT or start-up to a running processor, a start-up not after INIT, an INIT level de-assert, SMI and ExtINT.</summary>
    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>The I/O APIC whose interrupts this router carries (and which hears level-triggered EOIs), if the VM has one.</summary>
    public IoApic? IoApic { get; set; }

    /// <summary>
    /// Routes an I/O APIC's message: a physical APIC id (0xFF: every APIC) or a logical destination matched against each
    /// APIC's LDR/DFR in xAPIC form; lowest priority goes to the lowest-numbered match. No shorthand.
    /// </summary>
    /// <param name="message">The message its redirection entry builds.</param>
    public void DeliverFromIoApic(in ApicMessage message) => DeliverToDestination(message, x2: false);

    /// <summary>The APIC with id <paramref name="id"/>.</summary>
    /// <param name="id">The APIC id.</param>
    public LocalApic ApicOf(int id) => _apics[id];

    /// <summary>Routes <paramref name="message"/> from <paramref name="source"/> to its targets.</summary>
    /// <param name="source">The sending APIC (the target of <see cref="ApicShorthand.Self"/>).</param>
    /// <param name="message">The message.</param>
    public void Deliver(LocalApic source, in ApicMessage message)
    {
        ArgumentNullException.ThrowIfNull(source);
        switch (message.Shorthand)
        {
            case ApicShorthand.Self:
                Hand(source, message);
                return;
            case ApicShorthand.AllIncludingSelf:
            case ApicShorthand.AllExcludingSelf:
                foreach (var apic in _apics)
                {
                    if (apic != source || message.Shorthand == ApicShorthand.AllIncludingSelf)
                    {
                        Hand(apic, message);
                    }
                }

                return;
        }

        DeliverToDestination(message, source.IsX2ApicMode);
    }

    /// <summary>
    /// Hands <paramref name="message"/> to every APIC its destination names — a physical id (all ones: every APIC) or a
    /// logical destination in xAPIC or x2APIC form — or to the first match for lowest priority; counts a miss.
    /// </summary>
    private void DeliverToDestination(in ApicMessage message, bool x2)
    {
        var matched = false;
        foreach (var apic in _apics)
        {
            var match = message.Logical
                ? apic.MatchesLogical(message.Destination, x2)
                : message.Destination == (x2 ? 0xFFFF_FFFFu : 0xFFu) || message.Destination == (uint)apic.Id;
            if (!match)
            {
                continue;
            }

            matched = true;
            Hand(apic, message);
            if (message.Mode == ApicDeliveryMode.LowestPriority)
            {
                break;
            }
        }

        if (!matched)
        {
            Interlocked.Increment(ref _missed);
        }
    }

    /// <summary>Hands <paramref name="message"/> to one target by its delivery mode, with no routing; false when the target ignored it.</summary>
    /// <param name="target">The target APIC.</param>
    /// <param name="message">The message.</param>
    /// <returns>True when the target accepted it.</returns>
    public static bool DeliverTo(LocalApic target, in ApicMessage message)
    {
        ArgumentNullException.ThrowIfNull(target);
        return message.Mode switch
        {
            ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority => target.AcceptFixed(message.Vector, message.LevelTriggered),
            ApicDeliveryMode.Nmi => Nmi(target),
            ApicDeliveryMode.Init => (message.Assert || !message.LevelTriggered) && target.AcceptInit(),
            ApicDeliveryMode.StartUp => target.AcceptStartup(message.Vector),
            _ => false,
        };

        static bool Nmi(LocalApic apic)
        {
            apic.AcceptNmi();
            return true;
        }
    }

    private void Hand(LocalApic target, in ApicMessage message)
    {
        Interlocked.Increment(ref _delivered);
        if (!DeliverTo(target, message) && message.Mode is not (ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority))
        {
            Interlocked.Increment(ref _ignored);
        }
    }
}

using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>Small hosts for process tests, and a recorder wired to both the notifier chain and the host trace.</summary>
internal static class TestHosts
{
    public const ulong Page = 4096;

    public static Host Create(ulong megabytes = 64, bool legacyChangePte = false, NotifierEra era = NotifierEra.Current) => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = megabytes << 20, AuditFreedFrames = true },
        LegacyChangePte = legacyChangePte,
        NotifierEra = era,
    });

    /// <summary>Registers a recorder on <paramref name="mm"/> and routes the host's steps into the same timeline.</summary>
    public static NotifierEventRecorder Record(Mm mm)
    {
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        mm.Host.Trace = new RecorderHostTrace(recorder);
        return recorder;
    }

    /// <summary>
    /// The timeline of one mm as compact tokens, consecutive repeats folded: e.g.
    /// "start:Unmap pte end flush free". Frame frees carry no mm and are always kept.
    /// </summary>
    public static string Timeline(NotifierEventRecorder recorder, Mm mm)
    {
        var tokens = new List<string>();
        foreach (var e in recorder.Events)
        {
            if (e.Kind != NotifierTraceKind.FrameFree && e.Kind != NotifierTraceKind.Mark && e.MmId != mm.Id)
            {
                continue;
            }

            var token = e.Kind switch
            {
                NotifierTraceKind.InvalidateRangeStart => "start:" + e.Event,
                NotifierTraceKind.InvalidateRangeEnd => "end",
                NotifierTraceKind.IntervalInvalidate => "interval:" + e.Event,
                NotifierTraceKind.HostPteChange => "pte",
                NotifierTraceKind.HostTlbFlush => "flush",
                NotifierTraceKind.FrameFree => "free",
                NotifierTraceKind.Release => "release",
                NotifierTraceKind.ChangePte => "change_pte",
                NotifierTraceKind.ClearFlushYoung => "clear_flush_young",
                NotifierTraceKind.Mark => "mark:" + e.Label,
                _ => e.Kind.ToString(),
            };
            if (tokens.Count == 0 || tokens[^1] != token)
            {
                tokens.Add(token);
            }
        }

        return string.Join(' ', tokens);
    }

    public static void AssertConsistent(Host host)
    {
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(20)));
    }

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

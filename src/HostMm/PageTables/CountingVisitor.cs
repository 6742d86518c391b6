namespace Hypervisor.HostMm.PageTables;

/// <summary>Counts leaf entries by kind for <see cref="HostPageTable.CountEntries"/>.</summary>
internal struct CountingVisitor : IPteVisitor
{
    private long _present;
    private long _writable;
    private long _swap;
    private long _migration;
    private long _protNone;

    /// <summary>The counts so far.</summary>
    public readonly PteCounts Counts => new()
    {
        Present = _present,
        Writable = _writable,
        Swap = _swap,
        Migration = _migration,
        ProtNone = _protNone,
    };

    /// <inheritdoc />
    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        foreach (var value in entries)
        {
            if (value == 0)
            {
                continue;
            }

            var pte = new HostPte(value);
            switch (HostPteEncoding.Classify(pte))
            {
                case HostPteKind.Present:
                    _present++;
                    if (pte.IsWritable)
                    {
                        _writable++;
                    }

                    break;
                case HostPteKind.Swap:
                    _swap++;
                    break;
                case HostPteKind.Migration:
                    _migration++;
                    break;
                case HostPteKind.ProtNone:
                    _protNone++;
                    break;
            }
        }

        return true;
    }
}

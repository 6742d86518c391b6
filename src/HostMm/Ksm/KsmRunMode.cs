namespace Hypervisor.HostMm.Ksm;

/// <summary>What the KSM scanner does (Linux's <c>/sys/kernel/mm/ksm/run</c>).</summary>
public enum KsmRunMode
{
    /// <summary>0: the scanner does nothing; merged pages stay merged (the default, as in Linux).</summary>
    Stop = 0,

    /// <summary>1: the scanner merges identical pages of mergeable memory.</summary>
    Merge = 1,

    /// <summary>2: every KSM page of every process was broken (unmerged); the scanner does nothing.</summary>
    Unmerge = 2,
}

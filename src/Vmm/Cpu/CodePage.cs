using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Cpu;

/// <summary>One vCPU's decoded blocks of one guest-physical page in one code size, indexed by page offset.</summary>
internal sealed class CodePage(ulong key, int version)
{
    /// <summary>The gpa page with the code-size tag in its low bits.</summary>
    public ulong Key { get; } = key;

    /// <summary>The <see cref="CodePageMap"/> version the blocks were decoded at.</summary>
    public int Version { get; set; } = version;

    /// <summary>The block starting at each page offset, or null.</summary>
    public CodeBlock?[] Blocks { get; } = new CodeBlock?[Paging.PageSize];
}

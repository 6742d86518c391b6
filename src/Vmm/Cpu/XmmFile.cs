using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Hypervisor.Vmm.Cpu;

/// <summary>The sixteen 128-bit XMM registers inline in the vCPU (no allocation; indexed 0–15).</summary>
[InlineArray(16)]
internal struct XmmFile
{
    private Vector128<byte> _element0;
}

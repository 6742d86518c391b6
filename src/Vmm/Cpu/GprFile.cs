namespace Hypervisor.Vmm.Cpu;

/// <summary>The sixteen 64-bit general registers, stored inline in the CPU object (no array indirection on the hot path).</summary>
[System.Runtime.CompilerServices.InlineArray(16)]
internal struct GprFile
{
    private ulong _first;
}

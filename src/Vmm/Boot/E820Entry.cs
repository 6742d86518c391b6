namespace Hypervisor.Vmm.Boot;

/// <summary>One entry of the guest's physical memory map: <c>[Address, Address + Size)</c> of <see cref="Type"/>.</summary>
/// <param name="Address">First guest-physical address.</param>
/// <param name="Size">Length in bytes.</param>
/// <param name="Type">What the range is.</param>
public readonly record struct E820Entry(ulong Address, ulong Size, E820Type Type);

namespace Hypervisor.GuestMmu.Ept;

/// <summary>The table pointer at each level of a <see cref="TdpIterator"/>'s current path (index = level; 0 unused).</summary>
[InlineArray(EptGeometry.RootLevel + 1)]
internal struct TdpTablePath
{
    private nint _element;
}

namespace Hypervisor.HostMm.Migration;

/// <summary>One page's outcome of <see cref="Migrator.MovePages"/> (an entry of Linux's <c>move_pages</c> status array).</summary>
/// <param name="Node">The node the page is on afterwards (-1 when it is not resident).</param>
/// <param name="Failure">Why it was not moved, or <see cref="MigrationFailure.None"/>.</param>
public readonly record struct PageMoveStatus(int Node, MigrationFailure Failure)
{
    /// <summary>True when the page is on the requested node now.</summary>
    public bool Succeeded => Failure == MigrationFailure.None;

    /// <inheritdoc />
    public override string ToString() => Succeeded ? $"node {Node}" : $"{Failure} (node {Node})";
}

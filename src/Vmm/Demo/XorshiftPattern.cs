using System.Buffers.Binary;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// The sample guests' page pattern (guests/lib: <c>xorshift64</c>, shifts 13, 7, 17): each little-endian 64-bit word is
/// the next state of the generator. The demos read guest pages back through the host and compare them with it.
/// </summary>
internal static class XorshiftPattern
{
    /// <summary>
    /// Whether <paramref name="page"/> holds the pattern continuing from <paramref name="state"/>; the state advances by
    /// one word per 8 bytes of the page whether or not it matches, so a stream over several pages stays in step.
    /// </summary>
    /// <param name="page">The bytes read back (a whole number of words).</param>
    /// <param name="state">The generator's state before the page's first word; after the page's last word on return.</param>
    public static bool Matches(ReadOnlySpan<byte> page, ref ulong state)
    {
        var matches = true;
        for (var word = 0; word < page.Length; word += sizeof(ulong))
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            matches &= BinaryPrimitives.ReadUInt64LittleEndian(page[word..]) == state;
        }

        return matches;
    }
}

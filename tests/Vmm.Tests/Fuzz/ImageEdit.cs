namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>One mutation of an image file.</summary>
/// <param name="Kind">0 bit flip, 1–3 field overwrite of <paramref name="Width"/> bytes, 4 truncate, 5 insert, 6 delete, 7 append, 8 cut 1 to 4096 bytes off the end.</param>
/// <param name="HeaderBiased">True to aim at the first 0x300 bytes (ELF header and program headers, the setup header).</param>
/// <param name="Position">Where, as a fraction of the aimed-at span.</param>
/// <param name="Value">The value written, inserted or appended (and the bit flipped).</param>
/// <param name="Width">The field width in bytes (×4 bytes inserted or deleted).</param>
internal sealed record ImageEdit(int Kind, bool HeaderBiased, double Position, ulong Value, int Width);

using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.Vmm.Acpi;

/// <summary>
/// The few AML encodings the DSDT needs (ACPI 6 §20.2): name strings, package lengths, integers, and the
/// <c>Name (\NAME, Package () {…})</c> term.
/// </summary>
public static class AmlEncoder
{
    /// <summary>NameOp.</summary>
    public const byte NameOp = 0x08;

    /// <summary>PackageOp.</summary>
    public const byte PackageOp = 0x12;

    /// <summary>ZeroOp.</summary>
    public const byte ZeroOp = 0x00;

    /// <summary>OneOp.</summary>
    public const byte OneOp = 0x01;

    /// <summary>BytePrefix.</summary>
    public const byte BytePrefix = 0x0A;

    /// <summary>WordPrefix.</summary>
    public const byte WordPrefix = 0x0B;

    /// <summary>DWordPrefix.</summary>
    public const byte DWordPrefix = 0x0C;

    /// <summary>QWordPrefix.</summary>
    public const byte QWordPrefix = 0x0E;

    /// <summary>RootChar ('\').</summary>
    public const byte RootChar = 0x5C;

    /// <summary>The largest length a PkgLength encodes (28 bits).</summary>
    public const int MaxPackageLength = (1 << 28) - 1;

    /// <summary>
    /// A PkgLength for <paramref name="contentLength"/> bytes following it: the encoded length counts the PkgLength
    /// bytes themselves; one byte (6 bits) up to 63, else a lead byte with the count of following bytes in bits 7–6 and
    /// the low 4 bits of the length, then the rest of the length 8 bits per byte.
    /// </summary>
    /// <param name="contentLength">The bytes after the PkgLength that it covers.</param>
    /// <exception cref="ArgumentOutOfRangeException">The length is negative or does not fit in 28 bits.</exception>
    public static byte[] PackageLength(int contentLength)
    {
        if (contentLength < 0 || contentLength > MaxPackageLength - 4)
        {
            throw new ArgumentOutOfRangeException(nameof(contentLength), contentLength, $"AML package content of {contentLength} bytes is invalid: a PkgLength encodes 0 to {MaxPackageLength - 4} bytes of content");
        }

        if (contentLength + 1 <= 0x3F)
        {
            return [(byte)(contentLength + 1)];
        }

        for (var follow = 1; follow <= 3; follow++)
        {
            var total = contentLength + 1 + follow;
            if (total < 1 << (4 + (8 * follow)))
            {
                var bytes = new byte[1 + follow];
                bytes[0] = (byte)((follow << 6) | (total & 0xF));
                for (var i = 1; i <= follow; i++)
                {
                    bytes[i] = (byte)(total >> (4 + (8 * (i - 1))));
                }

                return bytes;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(contentLength), contentLength, "unreachable: checked above");
    }

    /// <summary>The shortest AML data object for <paramref name="value"/>: ZeroOp, OneOp, or a Byte/Word/DWord/QWord constant.</summary>
    /// <param name="value">The integer.</param>
    public static byte[] Integer(ulong value)
    {
        switch (value)
        {
            case 0:
                return [ZeroOp];
            case 1:
                return [OneOp];
            case <= 0xFF:
                return [BytePrefix, (byte)value];
            case <= 0xFFFF:
                var word = new byte[3];
                word[0] = WordPrefix;
                BinaryPrimitives.WriteUInt16LittleEndian(word.AsSpan(1), (ushort)value);
                return word;
            case <= 0xFFFF_FFFF:
                var dword = new byte[5];
                dword[0] = DWordPrefix;
                BinaryPrimitives.WriteUInt32LittleEndian(dword.AsSpan(1), (uint)value);
                return dword;
            default:
                var qword = new byte[9];
                qword[0] = QWordPrefix;
                BinaryPrimitives.WriteUInt64LittleEndian(qword.AsSpan(1), value);
                return qword;
        }
    }

    /// <summary>
    /// <c>Name (\<paramref name="name"/>, Package () {<paramref name="elements"/>})</c>: a root-relative name of one
    /// NameSeg (1–4 characters: a leading 'A'–'Z' or '_', then 'A'–'Z', '0'–'9' or '_'; padded with '_').
    /// </summary>
    /// <param name="name">The name segment.</param>
    /// <param name="elements">The package's integer elements (at most 255).</param>
    /// <exception cref="ArgumentException">The name is not a valid NameSeg, or there are more than 255 elements.</exception>
    public static byte[] NamedPackage(string name, params ReadOnlySpan<ulong> elements)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (elements.Length > 255)
        {
            throw new ArgumentException($"package of {elements.Length} elements is too long: a Package's NumElements is one byte (at most 255)", nameof(elements));
        }

        var content = new List<byte> { (byte)elements.Length };
        foreach (var element in elements)
        {
            content.AddRange(Integer(element));
        }

        var term = new List<byte> { NameOp, RootChar };
        term.AddRange(NameSeg(name));
        term.Add(PackageOp);
        term.AddRange(PackageLength(content.Count));
        term.AddRange(content);
        return [.. term];
    }

    /// <summary>The 4-byte NameSeg of <paramref name="name"/>, padded with '_'.</summary>
    /// <param name="name">1–4 characters: a leading 'A'–'Z' or '_', then 'A'–'Z', '0'–'9' or '_'.</param>
    /// <exception cref="ArgumentException">The name breaks that rule.</exception>
    public static byte[] NameSeg(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var valid = name.Length is >= 1 and <= 4
            && (char.IsAsciiLetterUpper(name[0]) || name[0] == '_')
            && name.All(c => char.IsAsciiLetterUpper(c) || char.IsAsciiDigit(c) || c == '_');
        if (!valid)
        {
            throw new ArgumentException($"AML name \"{name}\" is invalid: a NameSeg is 1–4 characters, a leading 'A'–'Z' or '_' then 'A'–'Z', '0'–'9' or '_'", nameof(name));
        }

        return Encoding.ASCII.GetBytes(name.PadRight(4, '_'));
    }
}

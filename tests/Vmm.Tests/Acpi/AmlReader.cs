using System.Text;

namespace Hypervisor.Vmm.Tests.Acpi;

/// <summary>
/// A strict reader of the AML subset a DSDT of named integer packages uses, written from the ACPI 6 grammar (§20.2):
/// TermList of <c>DefName := NameOp NameString DataRefObject</c>, NameString with RootChar/ParentPrefix and NameSeg,
/// DataRefObject as ZeroOp/OneOp/OnesOp/Byte-/Word-/DWord-/QWordConst or <c>DefPackage := PackageOp PkgLength
/// NumElements PackageElementList</c>. Anything else, or a length that runs past its container, fails.
/// </summary>
internal sealed class AmlReader(byte[] aml)
{
    private int _at;

    /// <summary>Reads the whole TermList into name → value (an integer, or a list of integers for a package).</summary>
    public Dictionary<string, object> ReadTermList()
    {
        var names = new Dictionary<string, object>();
        while (_at < aml.Length)
        {
            Expect(0x08, "NameOp");
            var name = ReadNameString();
            names.Add(name, ReadDataRefObject(aml.Length));
        }

        return names;
    }

    /// <summary>Decodes a PkgLength at <paramref name="at"/>: (its value, the bytes it occupies).</summary>
    public static (int Length, int Bytes) DecodePackageLength(ReadOnlySpan<byte> bytes, int at)
    {
        var lead = bytes[at];
        var follow = lead >> 6;
        if (follow == 0)
        {
            return (lead & 0x3F, 1);
        }

        Assert.That(lead & 0x30, Is.Zero, "bits 5-4 of a multi-byte PkgLength's lead byte are reserved (zero)");
        var length = lead & 0x0F;
        for (var i = 1; i <= follow; i++)
        {
            length |= bytes[at + i] << (4 + (8 * (i - 1)));
        }

        return (length, 1 + follow);
    }

    private string ReadNameString()
    {
        var prefix = new StringBuilder();
        if (aml[_at] == 0x5C)
        {
            prefix.Append('\\');
            _at++;
        }

        while (aml[_at] == 0x5E)
        {
            prefix.Append('^');
            _at++;
        }

        Assert.That(_at + 4, Is.LessThanOrEqualTo(aml.Length), "NameSeg runs past the end");
        var seg = Encoding.ASCII.GetString(aml, _at, 4);
        Assert.That(seg[0] == '_' || char.IsAsciiLetterUpper(seg[0]), $"NameSeg \"{seg}\" must start with a LeadNameChar");
        Assert.That(seg.All(c => c == '_' || char.IsAsciiLetterUpper(c) || char.IsAsciiDigit(c)), $"NameSeg \"{seg}\" has a character outside NameChar");
        _at += 4;
        return prefix + seg;
    }

    private object ReadDataRefObject(int end)
    {
        if (aml[_at] != 0x12)
        {
            return ReadInteger(end);
        }

        _at++;
        var start = _at;
        var (length, bytes) = DecodePackageLength(aml, _at);
        var packageEnd = start + length;
        Assert.That(packageEnd, Is.LessThanOrEqualTo(end), "the package's PkgLength runs past its container");
        _at += bytes;
        int count = aml[_at++];
        var elements = new List<ulong>();
        while (_at < packageEnd)
        {
            elements.Add(ReadInteger(packageEnd));
        }

        Assert.That(_at, Is.EqualTo(packageEnd), "the last element runs past the package's PkgLength");
        Assert.That(elements, Has.Count.LessThanOrEqualTo(count), "a package holds at most NumElements initialised elements");
        return elements;
    }

    private ulong ReadInteger(int end)
    {
        var op = aml[_at++];
        var size = op switch
        {
            0x00 or 0x01 or 0xFF => 0,
            0x0A => 1,
            0x0B => 2,
            0x0C => 4,
            0x0E => 8,
            _ => -1,
        };
        Assert.That(size, Is.Not.EqualTo(-1), $"opcode 0x{op:x2} at {_at - 1} is not an integer data object");
        Assert.That(_at + size, Is.LessThanOrEqualTo(end), "integer constant runs past its container");
        ulong value = op switch { 0x00 => 0, 0x01 => 1, 0xFF => ulong.MaxValue, _ => 0 };
        for (var i = 0; i < size; i++)
        {
            value |= (ulong)aml[_at + i] << (8 * i);
        }

        _at += size;
        return value;
    }

    private void Expect(byte op, string what)
    {
        Assert.That(aml[_at], Is.EqualTo(op), $"expected {what} (0x{op:x2}) at AML offset {_at}");
        _at++;
    }
}

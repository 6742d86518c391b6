using Hypervisor.Vmm.Acpi;

namespace Hypervisor.Vmm.Tests.Acpi;

/// <summary>PkgLength and integer encodings read back with the grammar's decoding rules (ACPI 6 §20.2.4, §20.2.3).</summary>
public sealed class AmlEncoderTests
{
    [TestCase(0, 1)]
    [TestCase(62, 1)]
    [TestCase(63, 2)]
    [TestCase(4000, 2)]
    [TestCase(5000, 3)]
    [TestCase(1 << 20, 4)]
    public void PackageLengthCountsItselfAndUsesTheShortestForm(int content, int expectedBytes)
    {
        var encoded = AmlEncoder.PackageLength(content);
        var (length, bytes) = AmlReader.DecodePackageLength(encoded, 0);

        Assert.Multiple(() =>
        {
            Assert.That(bytes, Is.EqualTo(encoded.Length), "the lead byte says how many bytes follow");
            Assert.That(bytes, Is.EqualTo(expectedBytes));
            Assert.That(length, Is.EqualTo(content + bytes), "PkgLength includes its own bytes");
        });
    }

    [TestCase(0UL, new byte[] { 0x00 })]
    [TestCase(1UL, new byte[] { 0x01 })]
    [TestCase(7UL, new byte[] { 0x0A, 7 })]
    [TestCase(0x1234UL, new byte[] { 0x0B, 0x34, 0x12 })]
    [TestCase(0x12345678UL, new byte[] { 0x0C, 0x78, 0x56, 0x34, 0x12 })]
    [TestCase(0x1_0000_0000UL, new byte[] { 0x0E, 0, 0, 0, 0, 1, 0, 0, 0 })]
    public void IntegersUseZeroOneOrTheSmallestConstPrefix(ulong value, byte[] expected)
    {
        Assert.That(AmlEncoder.Integer(value), Is.EqualTo(expected));
    }

    [Test]
    public void NamedPackageReadsBack()
    {
        var aml = AmlEncoder.NamedPackage("_S3", 1, 0x300, 0);

        var names = new AmlReader(aml).ReadTermList();

        Assert.That(names["\\_S3_"], Is.EqualTo(new List<ulong> { 1, 0x300, 0 }));
    }

    [TestCase("")]
    [TestCase("_S5XY")]
    [TestCase("1ABC")]
    [TestCase("ab")]
    public void InvalidNameSegIsRefused(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => AmlEncoder.NameSeg(name))!;
        Assert.That(error.Message, Does.Contain($"\"{name}\""));
    }
}

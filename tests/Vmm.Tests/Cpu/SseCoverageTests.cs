using Hypervisor.Vmm.Cpu;
using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// CPUID's SSE/SSE2/FXSR/XSAVE/CLFSH claims are true: every legacy-encoded form Iced knows for those features, except
/// the ones on MMX registers (no MMX state, and CPUID claims no MMX), is classified to a handler, not to #UD.
/// </summary>
public sealed class SseCoverageTests
{
    private static readonly CpuidFeature[] Claimed =
        [CpuidFeature.SSE, CpuidFeature.SSE2, CpuidFeature.FXSR, CpuidFeature.XSAVE, CpuidFeature.CLFSH, CpuidFeature.CLFLUSHOPT, CpuidFeature.CLWB, CpuidFeature.RDPID, CpuidFeature.SMAP, CpuidFeature.SEP, CpuidFeature.SYSCALL];

    [Test]
    public void EveryClaimedFormHasAHandler()
    {
        var missing = new List<string>();
        var checkedForms = 0;
        foreach (var code in Enum.GetValues<Code>())
        {
            if (code == Code.INVALID || code.Encoding() != EncodingKind.Legacy)
            {
                continue;
            }

            var features = code.CpuidFeatures();
            if (features.Length == 0 || !features.All(Claimed.Contains))
            {
                continue;
            }

            var opCode = code.ToOpCode();
            var usesMmx = Enumerable.Range(0, opCode.OpCount).Any(n => opCode.GetOpKind(n) is OpCodeOperandKind.mm_reg or OpCodeOperandKind.mm_rm or OpCodeOperandKind.mm_or_mem);
            if (usesMmx || !opCode.Mode64 && !opCode.Mode32)
            {
                continue;
            }

            checkedForms++;
            if (!OpClassifier.IsImplemented(code.Mnemonic()))
            {
                missing.Add(code.ToString());
            }
        }

        Assert.That(checkedForms, Is.GreaterThan(200));
        Assert.That(missing, Is.Empty);
    }
}

using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// Input exceptions of the host carry <see cref="IInputError"/> with the rule they broke (a
/// <see cref="HostMmRule"/>, or a <see cref="NotifierRule"/> for a bad range); exceptions for broken
/// invariants do not.
/// </summary>
public class InputErrorTests
{
    private static readonly Type[] s_inputErrors =
    [
        typeof(UnmappedRangeException), typeof(OverlappingMappingException), typeof(AddressSpaceExhaustedException),
        typeof(InvalidProtectionException), typeof(InvalidVmaFlagsException),
        typeof(HostFaultException), typeof(InvalidHostMemoryOptionsException),
        typeof(HostMm.Swap.SwapConfigurationException), typeof(HostMm.Ksm.InvalidKsmSettingException),
        typeof(HostMm.Migration.NumaNodeOutOfRangeException),
    ];

    private static readonly Type[] s_notInput =
    [
        typeof(FrameStateException), typeof(UseAfterFreeException), typeof(PfnOutOfRangeException),
        typeof(InvalidHostPteException), typeof(OutOfHostMemoryException),
        typeof(HostMm.Swap.SwapSlotStateException), typeof(MemoryFailureException), typeof(OutOfMemoryFaultException),
    ];

    [Test]
    public void EveryExceptionTypeOfTheLayerIsClassifiedAndOnlyInputErrorsCarryTheMarker()
    {
        var declared = typeof(Mm).Assembly.GetTypes().Where(t => typeof(Exception).IsAssignableFrom(t)).ToArray();

        Assert.That(declared, Is.EquivalentTo(s_inputErrors.Concat(s_notInput)), "a new exception type must be classified as input or not here");
        Assert.That(s_inputErrors, Is.All.Matches<Type>(t => typeof(IInputError).IsAssignableFrom(t)));
        Assert.That(s_notInput, Is.All.Matches<Type>(t => !typeof(IInputError).IsAssignableFrom(t)));
    }

    [Test]
    public void MappingErrorsReportTheirRules()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        mm.Mmap(Page, Protection.Read, MmapFlags.Fixed, start + (4 * Page)); // blocks growth in place
        mm.Munmap(start + Page, Page);

        Assert.That(RuleOf(() => mm.Mprotect(start, 2 * Page, Protection.Read)), Is.EqualTo(HostMmRule.RangeNotFullyMapped));
        Assert.That(RuleOf(() => mm.Madvise(start, 2 * Page, Advice.DontNeed)), Is.EqualTo(HostMmRule.RangeNotFullyMapped));
        Assert.That(RuleOf(() => mm.Mremap(start, 3 * Page, 4 * Page)), Is.EqualTo(HostMmRule.RangeNotInOneMapping));
        Assert.That(RuleOf(() => mm.Mremap(start + (2 * Page), 2 * Page, 4 * Page)), Is.EqualTo(HostMmRule.CannotGrowInPlace));
        Assert.That(RuleOf(() => mm.Madvise(start, 2 * Page, Advice.HugePage)), Is.EqualTo(HostMmRule.RangeNotFullyMapped));
        Assert.That(RuleOf(() => mm.Mmap(Page, Protection.Write)), Is.EqualTo(HostMmRule.WriteOrExecuteWithoutRead));
        Assert.That(RuleOf(() => mm.Mmap(Page, (Protection)64)), Is.EqualTo(HostMmRule.UndefinedProtectionBits));
    }

    [Test]
    public void RunningOutOfAddressSpaceReportsItsRule()
    {
        using var host = Create();
        var mm = host.CreateMm();
        mm.Mmap(Mm.UserSpaceEnd - Mm.MmapBase, Protection.Read); // every address mmap may choose by itself

        Assert.That(RuleOf(() => mm.Mmap(Page, Protection.Read)), Is.EqualTo(HostMmRule.NoFreeAddressRange));
    }

    [Test]
    public void BadRangesReportTheNotifierRangeRule()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);

        Assert.That(RuleOf(() => mm.Munmap(start + 1, Page)), Is.EqualTo(NotifierRule.UnalignedRange));
        Assert.That(RuleOf(() => mm.Munmap(start, 0)), Is.EqualTo(NotifierRule.EmptyOrReversedRange));
        Assert.That(RuleOf(() => mm.Munmap(Mm.UserSpaceEnd - Page, 2 * Page)), Is.EqualTo(NotifierRule.OutsideAddressSpace));
        Assert.That(RuleOf(() => mm.Mremap(start, 2 * Page, 2 * Page, MremapFlags.MayMove | MremapFlags.Fixed, start + Page)), Is.EqualTo(NotifierRule.OverlappingRanges));
    }

    [Test]
    public void HostAccessFaultsReportWhetherTheAddressIsUnmappedOrForbidden()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var readOnly = mm.Mmap(Page, Protection.Read);

        Assert.That(RuleOf(() => mm.Read(readOnly + (64 * Page), new byte[8])), Is.EqualTo(HostMmRule.AddressNotMapped));
        Assert.That(RuleOf(() => mm.Write(readOnly, new byte[8])), Is.EqualTo(HostMmRule.AccessNotPermitted));
    }

    [Test]
    public void VmaAndOptionErrorsReportTheirRules()
    {
        var set = new VmaSet();
        var first = new Hva(0x7f00_0000_0000);
        set.Add(first, first + (4 * Page), Protection.Read, VmaFlags.None);

        Assert.That(RuleOf(() => set.Add(first + Page, first + (2 * Page), Protection.Read, VmaFlags.None)), Is.EqualTo(HostMmRule.OverlappingMapping));
        Assert.That(RuleOf(() => InvalidVmaFlagsException.ThrowIfInvalid((VmaFlags)64, "flags")), Is.EqualTo(HostMmRule.UndefinedVmaFlags));
        Assert.That(RuleOf(() => InvalidVmaFlagsException.ThrowIfInvalid(VmaFlags.HugePage | VmaFlags.NoHugePage, "flags")), Is.EqualTo(HostMmRule.ConflictingHugePageFlags));
        Assert.That(RuleOf(() => new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 0 }.Validate()), Is.EqualTo(HostMmRule.NodeCountOutOfRange));
        Assert.That(RuleOf(() => new HostMemoryOptions { TotalBytes = HostMemoryOptions.MaxTotalBytes * 2 }.Validate()), Is.EqualTo(HostMmRule.TotalBytesOutOfRange));
        Assert.That(RuleOf(() => new HostMemoryOptions { TotalBytes = (64UL << 20) + Page, NodeCount = 1 }.Validate()), Is.EqualTo(HostMmRule.TotalBytesNotNodeAligned));
    }

    [Test]
    public void BrokenInvariantsDoNotCarryTheMarker()
    {
        using var host = Create();
        var memory = host.Memory;
        var pfn = memory.Allocate(0);
        memory.Put(pfn);

        AssertNotInput<FrameStateException>(() => memory.Put(pfn));
        AssertNotInput<UseAfterFreeException>(() => memory.AssertNotFree(pfn, "a test"));
        AssertNotInput<PfnOutOfRangeException>(() => _ = memory.IsFree(new Pfn((ulong)memory.TotalFrames)));
        AssertNotInput<InvalidHostPteException>(() => HostPteEncoding.MakeProtNone(HostPte.None));
    }

    private static Enum RuleOf(TestDelegate action)
    {
        var error = Assert.Catch(action)!;
        Assert.That(error, Is.InstanceOf<IInputError>(), $"{error.GetType().Name} is bad input and must carry the marker");
        return ((IInputError)error).Rule;
    }

    private static void AssertNotInput<TException>(TestDelegate action)
        where TException : Exception
    {
        var error = Assert.Throws<TException>(action)!;
        Assert.That(error, Is.Not.InstanceOf<IInputError>(), $"{typeof(TException).Name} reports a broken invariant and must not carry the input marker");
    }
}

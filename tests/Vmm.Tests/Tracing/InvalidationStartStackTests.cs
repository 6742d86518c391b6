using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Tests.Tracing;

/// <summary>The per-thread, per-subscriber-type stack that pairs invalidate_range_start with its end.</summary>
public sealed class InvalidationStartStackTests
{
    private sealed class FirstOwner;

    private sealed class SecondOwner;

    [Test]
    public void EachOwnerTypeHasItsOwnStackAndStartsPairWithEndsInnermostFirst()
    {
        InvalidationStartStack<FirstOwner>.Push();
        InvalidationStartStack<FirstOwner>.Push();
        InvalidationStartStack<SecondOwner>.Push();

        Assert.Multiple(() =>
        {
            Assert.That(InvalidationStartStack<SecondOwner>.TryPop(out var second), Is.True);
            Assert.That(InvalidationStartStack<SecondOwner>.TryPop(out _), Is.False, "the second owner pushed once");
            Assert.That(InvalidationStartStack<FirstOwner>.TryPop(out var inner), Is.True);
            Assert.That(InvalidationStartStack<FirstOwner>.TryPop(out var outer), Is.True);
            Assert.That(InvalidationStartStack<FirstOwner>.TryPop(out _), Is.False, "an end with no start pops nothing");
            Assert.That(outer, Is.LessThanOrEqualTo(inner), "the outer start was taken first");
            Assert.That(second, Is.GreaterThanOrEqualTo(inner));
        });
    }

    [Test]
    public void StartsBeyondTheDepthAreNotTimedButKeepThePairing()
    {
        var depth = InvalidationStartStack<FirstOwner>.MaxDepth + 2;
        for (var i = 0; i < depth; i++)
        {
            InvalidationStartStack<FirstOwner>.Push();
        }

        var timed = 0;
        for (var i = 0; i < depth; i++)
        {
            timed += InvalidationStartStack<FirstOwner>.TryPop(out _) ? 1 : 0;
        }

        Assert.That(timed, Is.EqualTo(InvalidationStartStack<FirstOwner>.MaxDepth));
        Assert.That(InvalidationStartStack<FirstOwner>.TryPop(out _), Is.False);
    }

    [Test]
    public void AnotherThreadHasItsOwnStack()
    {
        InvalidationStartStack<SecondOwner>.Push();
        var poppedElsewhere = true;
        var thread = new Thread(() => poppedElsewhere = InvalidationStartStack<SecondOwner>.TryPop(out _));
        thread.Start();
        thread.Join();

        Assert.That(poppedElsewhere, Is.False);
        Assert.That(InvalidationStartStack<SecondOwner>.TryPop(out _), Is.True);
    }
}

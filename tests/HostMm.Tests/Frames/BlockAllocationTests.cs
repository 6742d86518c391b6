using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

/// <summary>Order-9 allocation: 512 contiguous, 2 MiB-aligned frames for a transparent huge page, next to the single-frame list.</summary>
public sealed class BlockAllocationTests
{
    private const int Block = 512;
    private const int FramesPerNode = 8192;

    [Test]
    public void A_block_is_512_aligned_contiguous_frames_on_the_preferred_node_each_with_one_reference()
    {
        using var memory = TestMemory.Create();

        Assert.That(memory.TryAllocateBlock(1, AllocationFlags.Zero, out var first), Is.True);

        Assert.That(first.Value % Block, Is.Zero, "2 MiB-aligned");
        Assert.That(memory.NodeOf(first), Is.EqualTo(1));
        for (var i = 0UL; i < Block; i++)
        {
            ref var frame = ref memory.Frame(first + i);
            Assert.That((frame.RefCount, frame.MapCount, frame.Flags), Is.EqualTo((1, 0, FrameFlags.Zeroed)), $"frame {i}");
            Assert.That(memory.FrameBytes(first + i).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        }

        Assert.That(memory.GetNode(1).FreeFrames, Is.EqualTo(FramesPerNode - Block));
        Assert.That(memory.FreeBlocks(1), Is.EqualTo((FramesPerNode / Block) - 1));
        Assert.That(memory.FreeBlocks(0), Is.EqualTo(FramesPerNode / Block));
    }

    [Test]
    public void Freed_frames_make_the_block_whole_again_and_single_allocations_never_hand_out_a_taken_frame()
    {
        using var memory = TestMemory.Create(audit: true);
        Assert.That(memory.TryAllocateBlock(0, AllocationFlags.None, out var first), Is.True);
        var singles = Enumerable.Range(0, 100).Select(_ => memory.Allocate(0)).ToList();
        Assert.That(singles.Any(p => p.Value >= first.Value && p.Value < first.Value + Block), Is.False, "a single allocation never lands inside the taken block");

        for (var i = 0UL; i < Block; i++)
        {
            memory.Put(first + i);
        }

        Assert.That(memory.FreeBlocks(0), Is.EqualTo((FramesPerNode / Block) - 1), "the freed block is whole again; the singles hold one other block");
        foreach (var pfn in singles)
        {
            memory.Put(pfn);
        }

        Assert.That(memory.FreeBlocks(0), Is.EqualTo(FramesPerNode / Block));
        Assert.That(memory.GetNode(0).FreeFrames, Is.EqualTo(FramesPerNode));
        var all = new List<Pfn>();
        while (memory.TryAllocateBlock(0, AllocationFlags.ExactNode, out var block))
        {
            all.Add(block);
        }

        Assert.That(all, Has.Count.EqualTo(FramesPerNode / Block), "after every free the node splits into whole blocks again");
    }

    [Test]
    public void A_fragmented_node_has_no_block_and_the_allocation_falls_back_unless_it_must_stay()
    {
        using var memory = TestMemory.Create();
        var held = new List<Pfn>();
        while (memory.TryAllocate(0, AllocationFlags.ExactNode, out var pfn))
        {
            held.Add(pfn);
        }

        // Free every frame but one per block: plenty of free memory, no whole block.
        foreach (var pfn in held.Where(p => p.Value % Block != 0))
        {
            memory.Put(pfn);
        }

        Assert.That(memory.GetNode(0).FreeFrames, Is.EqualTo(FramesPerNode - (FramesPerNode / Block)));
        Assert.That(memory.FreeBlocks(0), Is.Zero);
        Assert.That(memory.TryAllocateBlock(0, AllocationFlags.ExactNode, out _), Is.False);
        Assert.That(memory.TryAllocateBlock(0, AllocationFlags.None, out var fallback), Is.True);
        Assert.That(memory.NodeOf(fallback), Is.EqualTo(1), "the other node had a whole block");
    }

    [Test]
    public void Mixed_single_and_block_allocations_keep_the_free_list_and_the_block_counts_consistent()
    {
        using var memory = TestMemory.Create();
        var random = new Random(7);
        var singles = new List<Pfn>();
        var blocks = new List<Pfn>();
        for (var step = 0; step < 20_000; step++)
        {
            switch (random.Next(5))
            {
                case 0 when memory.TryAllocateBlock(random.Next(2), AllocationFlags.None, out var block):
                    blocks.Add(block);
                    break;
                case 1 or 2 when memory.TryAllocate(random.Next(2), AllocationFlags.None, out var pfn):
                    singles.Add(pfn);
                    break;
                case 3 when singles.Count > 0:
                    var index = random.Next(singles.Count);
                    memory.Put(singles[index]);
                    singles.RemoveAt(index);
                    break;
                case 4 when blocks.Count > 0:
                    var victim = blocks[^1];
                    blocks.RemoveAt(blocks.Count - 1);
                    for (var i = 0UL; i < Block; i++)
                    {
                        memory.Put(victim + i);
                    }

                    break;
            }
        }

        var taken = singles.Count + (blocks.Count * Block);
        Assert.That(memory.FreeFrames, Is.EqualTo(memory.TotalFrames - taken));
        var owned = new HashSet<ulong>(singles.Select(p => p.Value));
        foreach (var block in blocks)
        {
            for (var i = 0UL; i < Block; i++)
            {
                Assert.That(owned.Add(block.Value + i), Is.True, "no frame is handed out twice");
            }
        }

        foreach (var pfn in singles)
        {
            memory.Put(pfn);
        }

        foreach (var block in blocks)
        {
            for (var i = 0UL; i < Block; i++)
            {
                memory.Put(block + i);
            }
        }

        Assert.That(memory.FreeBlocks(0) + memory.FreeBlocks(1), Is.EqualTo(2 * FramesPerNode / Block));
    }

    [Test]
    public void A_block_frame_written_while_free_is_quarantined_and_the_rest_of_the_block_stays_free()
    {
        using var memory = TestMemory.Create(audit: true);
        Assert.That(memory.TryAllocateBlock(0, AllocationFlags.ExactNode, out var first), Is.True);
        for (var i = 0UL; i < Block; i++)
        {
            memory.Put(first + i);
        }

        memory.FrameBytes(first + 3)[10] = 0x42; // a write through a stale pointer

        var error = Assert.Throws<UseAfterFreeException>(() => TakeBlockAt(memory, first))!;

        Assert.That(error.Pfn, Is.EqualTo(first + 3));
        Assert.That(memory.Frame(first + 3).Has(FrameFlags.Reserved), Is.True);
        Assert.That(memory.IsFree(first + 4), Is.True, "the other frames went back free");
        Assert.That(memory.GetNode(0).FreeFrames, Is.EqualTo(FramesPerNode - 1));
    }

    /// <summary>Allocates blocks until <paramref name="first"/>'s is taken (the cursor moved past it), freeing the others.</summary>
    private static void TakeBlockAt(HostMemory memory, Pfn first)
    {
        var others = new List<Pfn>();
        try
        {
            while (memory.TryAllocateBlock(0, AllocationFlags.ExactNode, out var block))
            {
                if (block == first)
                {
                    return;
                }

                others.Add(block);
            }
        }
        finally
        {
            foreach (var block in others)
            {
                for (var i = 0UL; i < Block; i++)
                {
                    memory.Put(block + i);
                }
            }
        }
    }
}

using System.Diagnostics;

namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// One block's translation made off the vCPU thread (<see cref="BackgroundCompiler"/>): the IL and the .NET JIT's
/// native code. The vCPU keeps interpreting the block until <see cref="IsDone"/>, then publishes <see cref="Code"/>
/// into <see cref="CodeBlock.Compiled"/> itself, on its own thread, after checking the block's code page is unchanged.
/// </summary>
/// <remarks>
/// Written by the compiling thread only (<see cref="TryRun"/>), read by the vCPU after <see cref="IsDone"/> (a volatile
/// read that orders the other fields' reads after their writes).
/// </remarks>
internal sealed class BlockCompilation(CodeBlock block, int bitness)
{
    private volatile bool _done;
    private int _started;

    /// <summary>The block to translate.</summary>
    public CodeBlock Block { get; } = block;

    /// <summary>The code size the block was decoded in.</summary>
    public int Bitness { get; } = bitness;

    /// <summary>True once <see cref="TryRun"/> has finished (the other members are then final).</summary>
    public bool IsDone => _done;

    /// <summary>The translation (null before <see cref="IsDone"/>, or when it failed).</summary>
    public CompiledBlockCode? Code { get; private set; }

    /// <summary>What the translation threw, if it failed (rethrown on the vCPU when it publishes).</summary>
    public Exception? Error { get; private set; }

    /// <summary>The <see cref="Stopwatch"/> ticks the translation took, native code included.</summary>
    public long Ticks { get; private set; }

    /// <summary>
    /// Translates the block and compiles its native code on the calling thread, unless another thread has started to:
    /// the compiler thread, or the vCPU that stopped waiting for it. True when this call did the work.
    /// </summary>
    public bool TryRun()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            return false;
        }

        var started = Stopwatch.GetTimestamp();
        try
        {
            Code = BlockCompiler.Compile(Block, Bitness);
        }
        catch (Exception error)
        {
            Error = error;
        }

        Ticks = Stopwatch.GetTimestamp() - started;
        _done = true;
        return true;
    }
}

using System.Diagnostics;
using Hypervisor.Vmm.Cli;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>Runs <c>hv</c> in-process, capturing standard output and error.</summary>
public static class Hv
{
    /// <summary>Runs through the public entry, as Main does but with captured writers.</summary>
    public static CliResult Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Program.Run(args, stdout, stderr);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs a command tree that a test extended (through <paramref name="extend"/>) before parsing.</summary>
    internal static CliResult Run(Action<HvCli> extend, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var cli = new HvCli(new CliContext(stdout, stderr, isTerminal: false));
        extend(cli);
        var exitCode = cli.Invoke(args);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// Runs <c>hv</c> as a child process (<c>dotnet hv.dll</c>) with <paramref name="environment"/> added to this
    /// process's, for what the process reads once at start-up (environment switches); fails the test after two minutes.
    /// </summary>
    public static CliResult RunProcess(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"hv {string.Join(' ', args)} did not exit within two minutes");
        }

        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }
}

using System.Diagnostics;

namespace LineAgent.Tests.Support;

/// <summary>Runs a program to completion and captures what it printed.</summary>
public static class Programs
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
            psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            await p.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(120));
        }
        catch (TimeoutException)
        {
            // A program that did not stop (an agent that started when the test expected a refusal) must not outlive the
            // test: it kept its port, its data dir, and any lock it inherited (the build's flock) for good.
            try { p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { } // it ended in between
            throw;
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>`lineagent ...` as a user runs it.</summary>
    public static Task<Result> LineAgentAsync(params string[] args) => RunAsync("dotnet", new[] { AgentProcess.AgentDll }.Concat(args));

    public static string RepoFile(string relative)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "LineAgent.sln")))
            dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), relative);
    }
}

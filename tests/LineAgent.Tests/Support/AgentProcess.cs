using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;

namespace LineAgent.Tests.Support;

/// <summary>The real agent as a separate process (`dotnet lineagent.dll run ...`) on a free loopback port.</summary>
public sealed partial class AgentProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex Listening();

    public static string AgentDll => Path.Combine(AppContext.BaseDirectory, "lineagent.dll");

    private AgentProcess(string dataDir, string? token, IEnumerable<string> extraArgs, IDictionary<string, string>? env)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { AgentDll, "run", "--data-dir", dataDir, "--urls", "http://127.0.0.1:0" }
                     .Concat(token is null ? [] : [$"--Api:Token={token}"]).Concat(extraArgs))
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
            psi.Environment[k] = v;
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => _listening.TrySetException(new InvalidOperationException($"agent exited early:\n{Output}"));
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _dataDir = dataDir;
        Token = token!;
    }

    private readonly string _dataDir;

    /// <summary>The Api:Token given, else (started with none) the one the agent generated into its data dir.</summary>
    public string Token { get; private set; }
    public Uri BaseAddress { get; private set; } = null!;
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
        if (Listening().Match(line) is { Success: true } m)
            _listening.TrySetResult(new Uri(m.Groups[1].Value));
    }

    /// <param name="token">Api:Token; null starts the agent without one, so it generates its own (read back into <see cref="Token"/>).</param>
    public static async Task<AgentProcess> StartAsync(string dataDir, string? token = "proc-token", IEnumerable<string>? args = null,
        IDictionary<string, string>? env = null)
    {
        var agent = new AgentProcess(dataDir, token, args ?? [], env);
        try
        {
            agent.BaseAddress = await agent._listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
            if (token is null)
                agent.Token = File.ReadAllText(Path.Combine(agent._dataDir, "api-token")).Trim();
        }
        catch
        {
            agent.Dispose();
            throw;
        }
        return agent;
    }

    /// <summary>Configuration settings (as <see cref="AgentFactory"/> takes them) as the agent's command-line arguments.</summary>
    public static string[] Args(IEnumerable<KeyValuePair<string, string?>> settings) => settings.Select(kv => $"--{kv.Key}={kv.Value}").ToArray();

    public HttpClient Api()
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        return client;
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    /// <summary>SIGKILL with requests in flight: each of them must end without an answer.</summary>
    public void Kill(params Task<HttpResponseMessage>[] inFlight)
    {
        Kill();
        foreach (var request in inFlight)
            Assert.That(async () => { await request; }, Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<TaskCanceledException>(), "no answer: killed");
    }

    /// <summary>Waits for the agent to exit by itself; returns the exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as launchd sends on unload; returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()]))
            await kill.WaitForExitAsync();
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                Kill();
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}

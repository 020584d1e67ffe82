using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace LineAgent.Bench;

/// <summary>
/// A program under test as a separate process (`dotnet &lt;dll&gt; ...`) listening on a free loopback port
/// (port 0; the port is read from Kestrel's "Now listening on" line). Every child is registered so that
/// <see cref="KillAll"/> can end them on any exit path.
/// </summary>
public sealed partial class Child : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<int, Child> Running = new();

    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _sampling = new();
    private long _sampledPeakKb;

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex Listening();

    private Child(string name, string dll, IEnumerable<string> args)
    {
        Name = name;
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["Logging__Console__FormatterName"] = "simple";
        psi.Environment.Remove("ASPNETCORE_URLS");
        psi.Environment.Remove("DOTNET_URLS");
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => _listening.TrySetException(new InvalidOperationException($"{Name} exited early:\n{Tail}"));
        _process.Start();
        Running[_process.Id] = this;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        if (!OperatingSystem.IsLinux())
            _ = SampleRssAsync(_sampling.Token);
    }

    public string Name { get; }
    public int Pid => _process.Id;
    public Uri BaseAddress { get; private set; } = null!;
    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the process wrote, for error messages.</summary>
    public string Tail
    {
        get { lock (_tail) return string.Join('\n', _tail); }
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 60) _tail.Dequeue();
        }
        if (Listening().Match(line) is { Success: true } m)
            _listening.TrySetResult(new Uri(m.Groups[1].Value));
    }

    public static async Task<Child> StartAsync(string name, string dll, IEnumerable<string> args, CancellationToken ct)
    {
        var child = new Child(name, dll, args);
        try
        {
            child.BaseAddress = await child._listening.Task.WaitAsync(TimeSpan.FromSeconds(120), ct);
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = child.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
            var clock = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    using var r = await http.GetAsync("/healthz", ct);
                    if (r.IsSuccessStatusCode) break;
                }
                catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(60)) { }
                if (clock.Elapsed > TimeSpan.FromSeconds(60))
                    throw new InvalidOperationException($"{name}: /healthz did not answer 200 within 60 s:\n{child.Tail}");
                await Task.Delay(100, ct);
            }
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
        return child;
    }

    /// <summary>An HttpClient for this child; <paramref name="connections"/> caps the pooled connections.</summary>
    public HttpClient Client(string? token, int connections = 4, TimeSpan? timeout = null)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
        };
        var client = new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(120) };
        if (token is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>
    /// With LINEAGENT_BENCH_SMAPS=DIR (Linux): the process's memory map with each mapping's resident size, copied to
    /// DIR/NAME.WHEN.smaps, to see what a peak is made of (JIT code, GC heap, native heap, which files).
    /// </summary>
    public void KeepSmaps(string when)
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("LINEAGENT_BENCH_SMAPS") is not { Length: > 0 } dir)
            return;
        try
        {
            Directory.CreateDirectory(dir);
            File.Copy($"/proc/{Pid}/smaps", Path.Combine(dir, $"{Name}.{when}.smaps"), overwrite: true);
        }
        catch (IOException e)
        {
            Console.WriteLine($"  (smaps of {Name} not kept: {e.Message})");
        }
    }

    /// <summary>Peak resident set size in KiB: VmHWM on Linux, else the highest `ps -o rss=` sample.</summary>
    public long? PeakRssKb()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                        return long.Parse(line["VmHWM:".Length..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture);
            }
            catch (IOException) { }
            return null;
        }
        var now = PsRssKb();
        if (now is { } n)
            Interlocked.Exchange(ref _sampledPeakKb, Math.Max(Interlocked.Read(ref _sampledPeakKb), n));
        var peak = Interlocked.Read(ref _sampledPeakKb);
        return peak > 0 ? peak : null;
    }

    private async Task SampleRssAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested && !_process.HasExited)
        {
            if (PsRssKb() is { } kb)
                Interlocked.Exchange(ref _sampledPeakKb, Math.Max(Interlocked.Read(ref _sampledPeakKb), kb));
            try { await Task.Delay(250, ct); } catch (OperationCanceledException) { break; }
        }
    }

    private long? PsRssKb()
    {
        try
        {
            var psi = new ProcessStartInfo("ps") { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { "-o", "rss=", "-p", Pid.ToString(CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(a);
            using var ps = Process.Start(psi)!;
            var text = ps.StandardOutput.ReadToEnd();
            ps.WaitForExit();
            return long.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var kb) ? kb : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>CPU time used so far (user + system): /proc/&lt;pid&gt;/stat utime+stime on Linux.</summary>
    public TimeSpan CpuTime()
    {
        if (OperatingSystem.IsLinux())
        {
            var stat = File.ReadAllText($"/proc/{Pid}/stat");
            // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds((double)ticks / ClockTicks.Value);
        }
        _process.Refresh();
        return _process.TotalProcessorTime;
    }

    private static readonly Lazy<long> ClockTicks = new(() =>
    {
        try
        {
            var v = Native.sysconf(Native.ScClkTck);
            return v > 0 ? v : 100;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return 100;
        }
    });

    /// <summary>SIGTERM (graceful stop), then a kill if it has not exited within <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited) return;
        try
        {
            if (!OperatingSystem.IsWindows())
                _ = Native.kill(Pid, Native.SigTerm);
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Kill();
        }
        Running.TryRemove(Pid, out _);
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (Exception)
        {
            // Last resort (e.g. while the runtime shuts down): SIGKILL by pid; the pid is ours until we reap it.
            if (!OperatingSystem.IsWindows())
                _ = Native.kill(Pid, Native.SigKill);
        }
    }

    /// <summary>Ends every child still running (Ctrl+C, exceptions, normal end).</summary>
    public static void KillAll()
    {
        foreach (var (pid, child) in Running.ToArray())
        {
            try { child.Kill(); }
            catch (Exception e) { Console.Error.WriteLine($"could not kill {child.Name} ({pid}): {e.Message}"); }
            Running.TryRemove(pid, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _sampling.CancelAsync();
        await StopAsync(TimeSpan.FromSeconds(15));
        _process.Dispose();
        _sampling.Dispose();
    }

    /// <summary>The dotnet host: DOTNET_HOST_PATH, else the one next to the running runtime, else `dotnet` on PATH.</summary>
    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
            return host;
        var exe = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        if (Environment.ProcessPath is { } self && Path.GetFileName(self) == exe)
            return self;
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var candidate = Path.Combine(root, exe);
        return File.Exists(candidate) ? candidate : exe;
    }

    private static class Native
    {
        public const int SigTerm = 15;
        public const int SigKill = 9;
        public static readonly int ScClkTck = OperatingSystem.IsLinux() ? 2 : 3;

        [DllImport("libc", SetLastError = true)]
        public static extern int kill(int pid, int sig);

        [DllImport("libc", SetLastError = true)]
        public static extern long sysconf(int name);
    }
}

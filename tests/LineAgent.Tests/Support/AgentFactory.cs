using System.Net.Http.Headers;
using LineAgent.Api;
using LineAgent.Scheduling;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Support;

/// <summary>
/// The whole agent in memory (WebApplicationFactory) on a real SQLite file in its own temporary
/// data directory, with time under the test's control.
/// </summary>
public sealed class AgentFactory : WebApplicationFactory<Program>
{
    public static readonly DateTimeOffset Epoch = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;

    public AgentFactory(TempDir? dir = null, FakeTimeProvider? time = null, IDictionary<string, string?>? settings = null,
        Action<IServiceCollection>? services = null, bool systemClock = false)
    {
        SystemClock = systemClock;
        Dir = dir ?? new TempDir();
        OwnsDir = dir is null;
        Time = time ?? new FakeTimeProvider(Epoch);
        _services = services;
        _settings = new Dictionary<string, string?>
        {
            ["Agent:DataDir"] = Dir.Path,
            ["Agent:DryRun"] = "true",
            ["Api:Token"] = "test-token",
            ["Api:SendWaitSeconds"] = "30",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
            _settings[k] = v;
    }

    public TempDir Dir { get; }
    /// <summary>Real time, for tests against processes that write real timestamps (the Messages emulator).</summary>
    public bool SystemClock { get; }
    private bool OwnsDir { get; }
    public FakeTimeProvider Time { get; }
    public string Token => _settings["Api:Token"] ?? Services.GetRequiredService<ApiToken>().Value;
    public string OutboxDir => System.IO.Path.Combine(Dir.Path, "outbox");

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.ConfigureAppConfiguration((_, c) => c.AddInMemoryCollection(_settings));
        builder.ConfigureTestServices(s =>
        {
            if (!SystemClock)
                s.AddSingleton<TimeProvider>(Time);
            _services?.Invoke(s);
        });
    }

    public HttpClient Api()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        return client;
    }

    public Dispatcher Dispatcher => Services.GetServices<IHostedService>().OfType<Dispatcher>().Single();

    /// <summary>Moves fake time forward to <paramref name="target"/>, one worker wake-up at a time, so no timer is skipped.</summary>
    public async Task AdvanceToAsync(DateTimeOffset target, string line = "default")
    {
        while (Time.GetUtcNow() < target)
        {
            var sleeping = await Eventually.ValueAsync(() => Dispatcher.SleepingUntil(line), $"worker of line {line} to sleep");
            Time.SetUtcNow(sleeping < target ? sleeping : target);
            if (sleeping < target)
                await Eventually.TrueAsync(() => Dispatcher.SleepingUntil(line) != sleeping, "worker to wake");
        }
    }

    public int OutboxFileCount(string messageId) =>
        Directory.Exists(OutboxDir) ? Directory.GetFiles(OutboxDir, messageId + ".*.json").Length : 0;

    public string[] OutboxFiles() => Directory.Exists(OutboxDir) ? Directory.GetFiles(OutboxDir, "*.json") : [];

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        // Pooled connections keep the database files open; close them before the folder goes.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (disposing && OwnsDir)
            Dir.Dispose();
    }
}

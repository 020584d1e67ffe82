using System.Globalization;
using System.Net;
using Dapper;
using LineAgent.Api;
using LineAgent.Availability;
using LineAgent.Batches;
using LineAgent.Leads;
using LineAgent.Bridge;
using LineAgent.Channels.Email;
using LineAgent.Channels.Messages;
using LineAgent.Channels.Twilio;
using LineAgent.Delivery;
using LineAgent.Suppressions;
using LineAgent.Webhooks;
using LineAgent.Channels;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Sequences;
using LineAgent.Storage;
using LineAgent.WebConsole;
using Microsoft.Extensions.Options;

namespace LineAgent.Hosting;

/// <summary>Builds and runs the agent: configuration, services, HTTP pipeline.</summary>
public static class AgentHost
{
    public const string EnvPrefix = "LINEAGENT__";

    public static WebApplication Build(string[] args, IReadOnlyDictionary<string, string?> overrides)
    {
        var options = new WebApplicationOptions
        {
            Args = args,
            // appsettings.json ships next to the binary; `dotnet run` from elsewhere must still find it.
            ContentRootPath = args.Any(a => a.StartsWith("--contentRoot", StringComparison.OrdinalIgnoreCase)) ? null : AppContext.BaseDirectory,
        };
        // The slim host: no IIS integration, HTTP/3 or Debug/EventSource loggers, about 2 MB less memory (issue 10).
        var builder = WebApplication.CreateSlimBuilder(options);
        builder.WebHost.UseKestrelHttpsConfiguration();
        // Its console logger is added as the simple one, after the settings are read: Logging:Console:FormatterName (json,
        // systemd) is honoured again, as with the full host (review).
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o =>
        {
            if (builder.Configuration["Logging:Console:FormatterName"] is { Length: > 0 } formatter)
                o.FormatterName = formatter;
        });
        builder.AddAgentConfiguration(args, overrides);
        RefuseUnknownSettings(builder.Configuration);
        RefuseBadValues(builder.Configuration);
        builder.Services.AddLineAgent(builder.Configuration);
        builder.Services.AddLineAgentApi();

        var api = builder.Configuration.GetSection(ApiOptions.Section).Get<ApiOptions>() ?? new ApiOptions();
        builder.WebHost.UseUrls(api.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        // Kestrel's own refusals (bad request line, 414, 431) get a problem body like every other 4xx.
        builder.WebHost.ConfigureKestrel(o => o.ConfigureEndpointDefaults(KestrelRejections.Use));

        var app = builder.Build();
        app.UseLineAgentApi();
        return app;
    }

    /// <summary>
    /// What comes after the settings and the port are checked and before the host starts: the data directory is locked,
    /// the database checked (and migrated), and the warnings about them logged. A damaged file stops `run` with one line,
    /// not a host failure; a start refused for a setting or a port leaves no data directory or database behind (before,
    /// it left a new, empty database in a new data dir).
    /// </summary>
    public static WebApplication Prepare(WebApplication app)
    {
        app.Services.GetRequiredService<Db>();
        var dataDirectory = app.Services.GetRequiredService<DataDirectory>();
        // One a crash left (kill -9, launchd's SIGKILL after its ExitTimeOut) names an address this start may not listen on: the
        // CLI would send the token there (review). This agent holds the data dir's lock by now.
        dataDirectory.RemoveAddress();
        app.Lifetime.ApplicationStarted.Register(() => dataDirectory.WriteAddress(app.Urls, app.Logger));
        app.Lifetime.ApplicationStopped.Register(dataDirectory.RemoveAddress);
        var agent = app.Services.GetRequiredService<IOptions<AgentOptions>>().Value;
        if (DataDirectory.SyncedFolder(app.Services.GetRequiredService<DataDirectory>().Root) is { } synced)
            app.Logger.LogWarning("The data directory {Root} is inside {Synced}: a sync service can evict, copy back or conflict-copy " +
                "lineagent.db and its -wal while the agent writes them (damage, or a database that goes missing), and two Macs " +
                "syncing it would each lock only their own copy. Use a local folder (--data-dir or Agent:DataDir).",
                app.Services.GetRequiredService<DataDirectory>().Root, synced);
        if (agent.DryRun)
            app.Logger.LogWarning("DRY RUN: nothing is sent; every message is written to {Outbox}",
                app.Services.GetRequiredService<DataDirectory>().Outbox);
        if (LocalZone.Problem() is { } zone)
            app.Logger.LogWarning("{Problem} Unset TZ or give it a zone name.", zone);
        return app;
    }

    /// <summary>appsettings.json, then &lt;data dir&gt;/lineagent.json, then LINEAGENT__ variables, then the command line.</summary>
    public static void AddAgentConfiguration(this IHostApplicationBuilder builder, string[] args, IReadOnlyDictionary<string, string?> overrides)
    {
        var config = builder.Configuration;
        config.AddEnvironmentVariables(EnvPrefix);
        config.AddCommandLine(args);
        config.AddInMemoryCollection(overrides);
        var dataDir = AgentOptions.DataDirFrom(config);
        config.AddJsonFile(Path.Combine(dataDir, "lineagent.json"), optional: true, reloadOnChange: false);
        // Re-add so the environment and the command line win over the data-dir file.
        config.AddEnvironmentVariables(EnvPrefix);
        config.AddCommandLine(args);
        config.AddInMemoryCollection(overrides);
    }

    /// <summary>
    /// Every key of <data dir>/lineagent.json and every LINEAGENT__ environment variable must name a setting, as on the command
    /// line (<see cref="Cli.AgentCli.SettingProblem(string)"/>); each one that does not is named, with the nearest setting.
    /// </summary>
    public static void RefuseUnknownSettings(IConfiguration config)
    {
        var problems = new List<string>();
        void Check(string key, string where)
        {
            if (Cli.AgentCli.SettingProblem(key) is { } problem)
                problems.Add($"unknown setting '{Api.Problems.Echo(key)}' in {where}:{(problem.Length > 0 ? problem : " no such section.")}");
        }
        if (config is IConfigurationRoot root)
            foreach (var file in root.Providers.OfType<Microsoft.Extensions.Configuration.Json.JsonConfigurationProvider>()
                         .Where(p => string.Equals(Path.GetFileName(p.Source.Path), "lineagent.json", StringComparison.Ordinal)).Take(1))
                foreach (var key in LeafKeys(file, null).Distinct(StringComparer.OrdinalIgnoreCase).Order(ConfigurationKeyComparer.Instance))
                    if (key.Contains(':') || !Cli.AgentCli.SettingSections.ContainsKey(key)) // "Lines": [] reads as a value of the section
                        Check(key, "lineagent.json");
        foreach (var name in Environment.GetEnvironmentVariables().Keys.OfType<string>()
                     .Where(n => n.StartsWith(EnvPrefix, StringComparison.OrdinalIgnoreCase) && n.Length > EnvPrefix.Length).Order(StringComparer.Ordinal))
            Check(name[EnvPrefix.Length..].Replace("__", ":", StringComparison.Ordinal), $"the environment ({name})");
        if (problems.Count > 0)
            throw new UnknownSettingsException(problems);
    }

    /// <summary>The keys of one provider's values (a JSON file's leaves), found through its children.</summary>
    private static IEnumerable<string> LeafKeys(IConfigurationProvider provider, string? parent)
    {
        foreach (var child in provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            var key = parent is null ? child : $"{parent}:{child}";
            if (provider.TryGet(key, out var value) && value is not null)
                yield return key; // not an empty object or list ({} reads as a null value)
            foreach (var deeper in LeafKeys(provider, key))
                yield return deeper;
        }
    }

    /// <summary>
    /// Every setting whose value the configuration binder would not convert, all at once: the binder stops at the first,
    /// so a user with two mistakes learnt of the second only after fixing the first. The checks are the generated
    /// binder's own parsers (invariant culture; enums by name or number, ignoring case). A number, switch, duration or
    /// choice set to nothing (`LINEAGENT__Email__Smtp__Port=`, `"MaxPerHour": ""`) is refused too: the generated binder
    /// skips an empty value and keeps the default, which would start the agent with a setting other than the one the
    /// user thinks they gave. Exit 78, one line (<see cref="ConfigurationProblem"/>).
    /// </summary>
    public static void RefuseBadValues(IConfiguration config)
    {
        var bad = new List<ConfigurationValuesException.Value>();
        foreach (var (key, value) in config.AsEnumerable())
        {
            if (value is null || Cli.AgentCli.SettingProblem(key, out var leaf) is not null || leaf is null)
                continue;
            var type = Nullable.GetUnderlyingType(leaf) ?? leaf;
            if (type.IsValueType && (value.Length == 0 || !Converts(type, value)))
                bad.Add(new(key, type));
        }
        if (bad.Count > 0)
            throw new ConfigurationValuesException(bad.OrderBy(b => b.Key, ConfigurationKeyComparer.Instance).ToList());
    }

    private static bool Converts(Type type, string value)
    {
        var inv = CultureInfo.InvariantCulture;
        if (type.IsEnum)
            return Enum.TryParse(type, value, ignoreCase: true, out _);
        if (type == typeof(int))
            return int.TryParse(value, NumberStyles.Integer, inv, out _);
        if (type == typeof(long))
            return long.TryParse(value, NumberStyles.Integer, inv, out _);
        if (type == typeof(double))
            return double.TryParse(value, NumberStyles.Float, inv, out _);
        if (type == typeof(TimeSpan))
            return TimeSpan.TryParse(value, inv, out _);
        if (type == typeof(bool))
            return bool.TryParse(value, out _);
        try
        {
            System.ComponentModel.TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return true;
        }
        catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException or OverflowException)
        {
            return false;
        }
    }

    /// <summary>Storage, scheduling and channels: everything but HTTP.</summary>
    public static IServiceCollection AddLineAgent(this IServiceCollection services, IConfiguration configuration)
    {
        DefaultTypeMap.MatchNamesWithUnderscores = true;

        services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section).ValidateOnStart();
        services.AddOptions<ApiOptions>().BindConfiguration(ApiOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AgentOptions>, AgentOptionsRegion>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiOptions>, ApiOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiOptions>, ApiOptionsLimits>());
        services.AddOptions<HostOptions>().Configure<IOptions<AgentOptions>>((host, agent) => host.ShutdownTimeout = agent.Value.ShutdownTimeout);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<DataDirectory>();
        services.AddSingleton<DataDirLock>();
        services.AddLineAgentStorage(); // Db: checked, backed up before a migration, migrated; scheduled backups
        services.AddSingleton<StorageHealth>();
        services.AddSingleton<DbWriter>();

        // Each feature registers its own services, options and validators. Hosted services start in this order:
        // the webhook outbox listens before anything changes; recovery settles the previous run before the dispatcher claims.
        services.AddWebhooks();
        services.AddMessages();
        services.AddLines();
        services.AddScheduling();
        services.AddChannels();
        services.AddDelivery();
        services.AddLeads();
        services.AddFollowUps(); // bulk preview, Twilio replies
        return services;
    }

    /// <summary>What is wrong with a line's pacing settings; a window that does not parse must not silently open all day.</summary>
    public static List<string> PacingProblems(LineOptions line)
    {
        var p = line.Pacing;
        var problems = new List<string>();
        if (!string.IsNullOrWhiteSpace(p.Window.From) && !SendWindow.TryParse(p.Window.From, out _))
            problems.Add($"Lines:{line.Id}:Pacing:Window:From '{p.Window.From}' is not HH:mm");
        if (!string.IsNullOrWhiteSpace(p.Window.To) && !SendWindow.TryParse(p.Window.To, out _))
            problems.Add($"Lines:{line.Id}:Pacing:Window:To '{p.Window.To}' is not HH:mm");
        if (string.IsNullOrWhiteSpace(p.Window.From) != string.IsNullOrWhiteSpace(p.Window.To))
            problems.Add($"Lines:{line.Id}:Pacing:Window needs both From and To");
        if (!string.IsNullOrWhiteSpace(p.Window.TimeZone) && !Schedules.TryFindZone(p.Window.TimeZone, out _))
            problems.Add($"Lines:{line.Id}:Pacing:Window:TimeZone '{p.Window.TimeZone}' is not an IANA zone");
        if ((!string.IsNullOrWhiteSpace(p.RecipientWindow.From) || !string.IsNullOrWhiteSpace(p.RecipientWindow.To))
            && (!PacingRules.HasHours(p.RecipientWindow) || p.RecipientWindow.From == p.RecipientWindow.To))
            problems.Add($"Lines:{line.Id}:Pacing:RecipientWindow needs From and To as different HH:mm times");
        if (p.MinGap < TimeSpan.Zero || p.Jitter < TimeSpan.Zero || p.MaxPerHour < 0 || p.MaxPerDay < 0 || p.MaxNewConversationsPerDay < 0)
            problems.Add($"Lines:{line.Id}:Pacing has a negative gap or cap");
        return problems;
    }

    public static IServiceCollection AddLineAgentApi(this IServiceCollection services)
    {
        services.ConfigureHttpJsonOptions(o => AgentJson.ConfigureRequests(o.SerializerOptions));
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddProblemDetails(o => o.CustomizeProblemDetails = StatusCodes4xx.Customize);
        services.AddExceptionHandler<AgentExceptionHandler>();
        services.AddSingleton<ApiToken>();
        services.TryAddSingleton<AgentClock>();
        services.TryAddSingleton<StatusQuery>();
        services.AddHostedService<ApiExposureCheck>();
        services.AddLineAgentConsole();
        return services;
    }

    public static WebApplication UseLineAgentApi(this WebApplication app)
    {
        // The start time is taken now, while the agent starts, not when /api/status is first asked.
        app.Services.GetRequiredService<AgentClock>();
        // Every answer says what it is: a browser never sniffs a JSON body or an export into something it runs.
        app.Use((context, next) =>
        {
            context.Response.Headers.XContentTypeOptions = "nosniff";
            return next(context);
        });
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use(JsonFlushHold.Use);
        app.UseMiddleware<HostGuardMiddleware>();
        app.UseWhen(c => c.Request.Path.StartsWithSegments("/api"), b =>
        {
            b.UseMiddleware<TokenAuthMiddleware>();
            b.UseMiddleware<QueryGuardMiddleware>();
            b.UseMiddleware<ContentEncodingGuardMiddleware>();
            b.UseMiddleware<JsonBodyBufferMiddleware>();
        });
        app.MapAgentOpenApi();
        app.MapStatus();
        app.MapMessages();
        app.MapLines();
        app.MapAvailability();
        app.MapSuppressions();
        app.MapLeads();
        app.MapBatches();
        app.MapWebhooks();
        app.MapFollowUps(); // /api/sequences, /api/messages/bulk/preview
        app.MapConsole();
        return app;
    }

    public static bool IsLoopback(string url)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out var uri))
            return false;
        return uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
    }
}

/// <summary>
/// Refuses to listen beyond loopback unless a token was configured on purpose: first on the configured
/// Api:Urls, then on the addresses Kestrel actually bound (Kestrel:Endpoints or ASPNETCORE_URLS can add
/// others, whatever Api:Urls says).
/// </summary>
internal sealed class ApiExposureCheck(IOptions<ApiOptions> api, ApiToken token, Microsoft.AspNetCore.Hosting.Server.IServer server,
    ILogger<ApiExposureCheck> log) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken ct) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken ct) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken ct) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken ct)
    {
        var bound = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses ?? [];
        var exposed = bound.Where(u => !AgentHost.IsLoopback(u)).ToList();
        if (exposed.Count > 0 && !token.IsConfigured)
            throw new StartupRefusedException(
                $"lineagent: the API is bound beyond loopback ({string.Join(", ", exposed)}), set by Kestrel or ASP.NET Core settings rather than Api:Urls; " +
                "set Api:Token explicitly (LINEAGENT__Api__Token) to listen there, or remove that setting.");
        if (exposed.Count > 0)
            log.LogWarning("The API listens beyond loopback: {Urls}", string.Join(", ", exposed));
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken ct)
    {
        var exposed = api.Value.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(u => !AgentHost.IsLoopback(u)).ToList();
        if (exposed.Count > 0 && !token.IsConfigured)
            throw new StartupRefusedException(
                $"lineagent: Api:Urls includes non-loopback {string.Join(", ", exposed)}; set Api:Token explicitly (LINEAGENT__Api__Token) to listen there.");
        if (exposed.Count > 0)
            log.LogWarning("The API listens beyond loopback: {Urls}", string.Join(", ", exposed));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken ct) => Task.CompletedTask;
}

using System.Text.Json.Nodes;
using LineAgent.Bridge;
using LineAgent.Channels;
using LineAgent.Channels.Email;
using LineAgent.Channels.Messages;
using LineAgent.Channels.Twilio;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Storage;
using LineAgent.Suppressions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LineAgent.Cli;

/// <summary>One finding of `lineagent doctor`.</summary>
public sealed record Check(string Name, string State, string Detail, string? Fix = null, bool Required = true)
{
    public const string Ok = "ok";
    public const string Warn = "warn";
    public const string Fail = "fail";
    public const string Skip = "skip";
    public bool Failed => State == Fail && Required;
}

/// <summary>
/// Checks what a line needs and says how to fix each problem: agent, Messages, permissions, SMS relay,
/// SMTP, Twilio, clock, disk, database. Messages facts come from the running agent when it answers
/// (they depend on the agent's own permissions), else from running the same checks here.
/// </summary>
public sealed class Doctor(IConfiguration config, AgentClient client)
{
    public async Task<int> RunAsync(TextWriter output, CancellationToken ct)
    {
        var checks = await ChecksAsync(ct);
        foreach (var c in checks)
        {
            output.WriteLine($"[{c.State,4}] {c.Name}: {c.Detail}");
            if (c.Fix is not null && c.State is Check.Fail or Check.Warn)
                output.WriteLine($"       fix: {c.Fix}");
        }
        var failed = checks.Count(c => c.Failed);
        output.WriteLine(failed == 0 ? "All required checks passed." : $"{failed} required check(s) failed.");
        return failed == 0 ? 0 : 1;
    }

    public async Task<IReadOnlyList<Check>> ChecksAsync(CancellationToken ct)
    {
        var checks = new List<Check>();
        Read(() => { AgentHost.RefuseUnknownSettings(config); return true; }, false);
        Read(() => { AgentHost.RefuseBadValues(config); return true; }, false);
        ValidateAsRunWould();
        var agent = Read(() => config.GetSection(AgentOptions.Section).Get<AgentOptions>(), null) ?? new();
        var lines = Read(() => config.GetSection("Lines").Get<List<LineOptions>>(), null) ?? [];
        if (lines.Count == 0) lines.Add(LinesOptions.DefaultLine());
        var dataDir = agent.ResolveDataDir();

        JsonNode? status = null;
        if (!await client.HealthyAsync(ct))
            checks.Add(new("Agent reachable", Check.Fail, $"nothing answers at {client.BaseUrl}",
                $"Start it: {AgentCli.StartAdvice}; its log: {AgentCli.LogAdvice}"));
        else if (await StatusAsync(ct) is not (var code, var body))
            // It answered /healthz but not its status within the client's 60 s (probe H: the unhandled exception of the timeout
            // and its stack trace were doctor's whole answer).
            checks.Add(new("Agent reachable", Check.Fail, $"{client.BaseUrl} is up but did not answer /api/status within 60 s",
                $"A health check of Messages may be hanging: see the agent's log ({AgentCli.LogAdvice}), and quit Messages if it does not answer."));
        else
        {
            if (code == 200)
            {
                status = body;
                checks.Add(new("Agent reachable", Check.Ok, $"{client.BaseUrl} — version {body!["version"]}, up {body["uptimeSeconds"]} s{(body["dryRun"]!.GetValue<bool>() ? ", DRY RUN" : "")}"));
            }
            else if (code is 401 or 403)
                checks.Add(new("Agent reachable", Check.Fail, $"{client.BaseUrl} answers but refuses the token ({AgentClient.Describe(code, body)})",
                    "Use the token of this agent's data dir: lineagent token --data-dir <dir>, or set LINEAGENT__Api__Token for both."));
            else
                checks.Add(new("Agent reachable", Check.Fail, $"{client.BaseUrl} answers its status with an error ({AgentClient.Describe(code, body)})",
                    $"See the agent's log ({AgentCli.LogAdvice}); a storage error: stop it and run lineagent restore --data-dir <dir>."));
        }

        checks.AddRange(InstallChecks.Run(config, dataDir));
        var dryRun = status?["dryRun"]?.GetValue<bool>() ?? agent.DryRun;
        checks.AddRange(await MessagesChecksAsync(lines, status, dryRun, ct));
        checks.Add(await SmtpCheckAsync(lines, dryRun, ct));
        checks.Add(await TwilioCheckAsync(lines, dryRun, ct));
        checks.Add(ClockCheck());
        checks.Add(DiskCheck(dataDir));
        if (status?["storage"]?["state"]?.GetValue<string>() is { } storage && storage != "ok")
            checks.Add(new("Storage writable", Check.Fail,
                status["storage"]?["detail"]?.GetValue<string>() is { } detail && detail.Contains("outbox", StringComparison.Ordinal)
                    ? $"the agent cannot write its dry-run outbox ({storage}: {detail}); due messages wait"
                    : $"the agent cannot write its database ({storage}{(status["storage"]?["detail"] is { } d ? $": {d}" : "")}); requests get 503 and due messages wait",
                storage switch
                {
                    "full" => "Free some disk space; the agent goes on by itself.",
                    "read_only" => "Make the data directory writable again; the agent goes on by itself.",
                    // A damaged file does not mend itself; an I/O error may be the disk.
                    _ => $"Check the disk. If the database is damaged ('malformed'): stop the agent and restore the last good copy: lineagent restore --data-dir {DatabaseFile.ShellQuote(dataDir)}",
                }));
        checks.Add(DatabaseCheck(dataDir));
        if (_configProblems.Count > 0)
            // First: the checks after it read the defaults in place of the settings that failed.
            checks.Insert(0, new("Configuration", Check.Fail, string.Join(" ", _configProblems.Distinct()),
                "Fix the setting named (the agent refuses to start with it: lineagent run exits 78)."));
        return checks;
    }

    /// <summary>The agent's /api/status, or null when it did not answer (a timeout, a dropped connection).</summary>
    private async Task<(int Code, JsonNode? Body)?> StatusAsync(CancellationToken ct)
    {
        try
        {
            return await client.SendAsync(HttpMethod.Get, "/api/status", ct: ct);
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }

    private readonly List<string> _configProblems = [];

    /// <summary>
    /// The checks `lineagent run` makes before it starts (every options validator: ranges, Agent:DefaultRegion, the lines'
    /// pacing, Resilience:BreakDuration...), each one it would refuse named. Before, doctor read the settings but did not
    /// validate them: `Agent:DefaultRegion=ZZ` passed here and `run` refused it.
    /// </summary>
    private void ValidateAsRunWould()
    {
        try
        {
            using var services = new ServiceCollection().AddSingleton(config).AddLogging().AddLineAgent(config).AddLineAgentApi().BuildServiceProvider();
            services.GetService<IStartupValidator>()?.Validate();
        }
        catch (Exception e)
        {
            foreach (var one in e is AggregateException all ? all.InnerExceptions : [e])
                _configProblems.Add((ConfigurationProblem.Describe(one) ?? $"the settings could not be checked: {one.Message}").Replace("lineagent: configuration: ", ""));
        }
    }

    /// <summary>A section as the agent would bind it; a setting it would refuse is a failed check, and the default is used.</summary>
    private T? Read<T>(Func<T?> read, T? fallback)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (ConfigurationProblem.Describe(e) is { } problem)
        {
            _configProblems.Add(problem.Replace("lineagent: configuration: ", ""));
            return fallback;
        }
    }

    private async Task<IReadOnlyList<Check>> MessagesChecksAsync(List<LineOptions> lines, JsonNode? status, bool dryRun, CancellationToken ct)
    {
        var needsIMessage = lines.Any(l => l.Active && l.IMessage.Enabled);
        var needsRelay = lines.Any(l => l.Active && l.Sms.Enabled && l.Sms.Via == SmsLineOptions.ViaMessages);
        if (dryRun)
            return [new("Messages", Check.Skip, "dry run: nothing is sent through Messages", Required: false)];
        if (!needsIMessage && !needsRelay)
            return [new("Messages", Check.Skip, "no line sends through Messages", Required: false)];

        MessagesHealthReport report;
        string source;
        if (status?["lines"]?.AsArray().FirstOrDefault()?["messages"] is JsonObject fromAgent)
        {
            report = System.Text.Json.JsonSerializer.Deserialize<MessagesHealthReport>(fromAgent.ToJsonString(), Api.AgentJson.Options)!;
            // The agent's last check, which may be older than a Messages that hung since (probe H: "ok" for a Messages hung 31 s).
            var age = DateTimeOffset.UtcNow - report.CheckedAt;
            source = age > TimeSpan.FromSeconds(5) ? $"as the agent saw it {Math.Round(age.TotalSeconds):0} s ago" : "as the agent sees it";
        }
        else
        {
            var bridge = new MessagesBridge(Options.Create(Read(() => config.GetSection(BridgeOptions.Section).Get<BridgeOptions>(), null) ?? new()));
            report = await new MessagesHealth(bridge, TimeProvider.System).CheckAsync(ct, fresh: true);
            source = "checked from this terminal (the agent is not answering; its permissions may differ)";
        }

        var notMac = !OperatingSystem.IsMacOS() && report.Messages == "not_installed";
        // What is not known while Messages does not answer (its accounts) is a warning that says why, not a failure with a fix
        // for something nobody saw (probe H: Messages simply quit failed "no SMS account", with the iPhone's setting as fix).
        var unknownWhy = report.Messages == "reachable" ? "" : $" (unknown until Messages answers: it is {report.Messages.Replace('_', ' ')})";
        var checks = new List<Check>
        {
            report.Messages switch
            {
                "reachable" => new("Messages running", Check.Ok, $"Messages answers ({source})"),
                // README: Messages not running is a passing state: a send launches it.
                "not_running" => new("Messages running", Check.Warn, $"Messages is not running ({source}): the next send launches it", Required: false),
                _ => new("Messages running", Check.Fail, notMac ? "unavailable: Messages.app needs macOS" : $"{report.Messages.Replace('_', ' ')}: {report.Detail} ({source})",
                    notMac ? "Run the agent on a Mac, or with --dry-run here." : "Open Messages; if it hangs, quit it (the agent also restarts it after a timeout)."),
            },
            report.Automation switch
            {
                "granted" => new("Automation permission", Check.Ok, "the agent may control Messages"),
                "denied" => new("Automation permission", Check.Fail, "the agent may not control Messages (-1743)",
                    "System Settings > Privacy & Security > Automation > enable Messages for lineagent (or the terminal that runs it)."),
                _ => new("Automation permission", notMac ? Check.Skip : Check.Warn, "unknown until Messages answers", Required: false),
            },
            report.FullDiskAccess switch
            {
                "granted" => new("Full Disk Access (chat.db)", Check.Ok, "chat.db is readable"),
                "missing_db" => new("Full Disk Access (chat.db)", notMac ? Check.Skip : Check.Fail, "chat.db does not exist", "Open Messages once and sign in; check Bridge:ChatDbPath.", Required: !notMac),
                "damaged_db" => new("Full Disk Access (chat.db)", Check.Fail, "chat.db is readable but damaged: SQLite cannot read it as a database",
                    "Check that Bridge:ChatDbPath is Messages' chat.db (~/Library/Messages/chat.db). The agent's own database is not affected: do not restore it for this."),
                _ => new("Full Disk Access (chat.db)", Check.Fail, "chat.db cannot be read: sends could never be confirmed",
                    "System Settings > Privacy & Security > Full Disk Access > add ~/Library/Application Support/LineAgent/bin/lineagent."),
            },
        };
        if (needsIMessage)
            checks.Add(report.IMessageAccount switch
            {
                "signed_in" => new("iMessage signed in", Check.Ok, "an iMessage account is connected"),
                "unknown" => new("iMessage signed in", notMac ? Check.Skip : Check.Warn, $"not known{unknownWhy}", Required: false),
                _ => new("iMessage signed in", notMac ? Check.Skip : Check.Fail, $"iMessage account {report.IMessageAccount.Replace('_', ' ')}",
                    "Messages > Settings > iMessage: sign in with the line's Apple ID.", Required: !notMac),
            });
        if (needsRelay)
            checks.Add(report.SmsAccount switch
            {
                "available" => new("SMS relay", Check.Ok, "Messages has an SMS account (text message forwarding)"),
                "unknown" => new("SMS relay", notMac ? Check.Skip : Check.Warn, $"not known{unknownWhy}", Required: false),
                _ => new("SMS relay", notMac ? Check.Skip : Check.Fail, "no SMS account in Messages",
                    "iPhone > Settings > Messages > Text Message Forwarding: enable this Mac (or set the line's Sms:Via to twilio).", Required: !notMac),
            });
        return checks;
    }

    private async Task<Check> SmtpCheckAsync(List<LineOptions> lines, bool dryRun, CancellationToken ct)
    {
        var email = Read(() => config.GetSection(EmailOptions.Section).Get<EmailOptions>(), null) ?? new();
        var line = lines.FirstOrDefault(l => !string.IsNullOrWhiteSpace(l.Email.From));
        if (!email.IsConfigured || line is null)
            return new("SMTP login", Check.Skip, "email is not configured (Email:Smtp:Host and a line's Email:From)", Required: false);
        if (dryRun)
            return new("SMTP login", Check.Skip, "dry run", Required: false);
        await using var smtp = new SmtpEmailChannel(Options.Create(email), TimeProvider.System, NullLogger<SmtpEmailChannel>.Instance);
        var health = await smtp.CheckHealthAsync(line, Messages.MessageType.Email, ct);
        return health.State == ChannelHealth.Ok
            ? new("SMTP login", Check.Ok, $"connected and logged in to {health.Detail}")
            : new("SMTP login", Check.Fail, health.Detail ?? "failed", "Check Email:Smtp:Host, Port, Security, User and Password (an app password for Gmail/iCloud).");
    }

    private async Task<Check> TwilioCheckAsync(List<LineOptions> lines, bool dryRun, CancellationToken ct)
    {
        var twilio = Read(() => config.GetSection(TwilioOptions.Section).Get<TwilioOptions>(), null) ?? new();
        var line = lines.FirstOrDefault(l => l.Sms.Via == SmsLineOptions.ViaTwilio);
        if (line is null)
            return new("Twilio credentials", Check.Skip, "no line sends SMS through Twilio", Required: false);
        if (!twilio.IsConfigured)
            return new("Twilio credentials", Check.Fail, $"line '{line.Id}' uses Twilio but Twilio:AccountSid/AuthToken are not set", "Set them in <data dir>/lineagent.json.");
        if (dryRun)
            return new("Twilio credentials", Check.Skip, "dry run", Required: false);
        var db = new Db(":memory:");
        using var channel = new TwilioSmsChannel(Options.Create(twilio), new SuppressionList(db, TimeProvider.System), TimeProvider.System);
        var health = await channel.CheckHealthAsync(line, Messages.MessageType.Sms, ct);
        return health.State == ChannelHealth.Ok
            ? new("Twilio credentials", Check.Ok, health.Detail ?? "ok")
            : new("Twilio credentials", Check.Fail, health.Detail ?? "failed",
                health.Detail?.Contains("check Twilio:BaseUrl", StringComparison.Ordinal) == true
                    ? $"Twilio:BaseUrl is {twilio.BaseUrl}; unset, it is Twilio itself ({TwilioOptions.DefaultBaseUrl})."
                    : "Check Twilio:AccountSid, Twilio:AuthToken and the line's Sms:From.");
    }

    private static Check ClockCheck()
    {
        var now = DateTimeOffset.Now;
        var built = File.GetLastWriteTimeUtc(typeof(Doctor).Assembly.Location);
        var zone = TimeZoneInfo.Local;
        if (now.UtcDateTime < built.AddDays(-1))
            return new("Clock", Check.Fail, $"the clock says {now:O}, before this agent was built ({built:yyyy-MM-dd})",
                "Set the date and time automatically: System Settings > General > Date & Time.");
        if (Hosting.LocalZone.Problem() is { } problem)
            return new("Clock", Check.Warn, problem, "Unset TZ, or set it to a zone name such as America/New_York.", Required: false);
        return new("Clock", Check.Ok, $"{now:yyyy-MM-dd HH:mm:ss zzz} ({zone.Id}); schedules and send windows use this zone unless they name one");
    }

    private static Check DiskCheck(string dataDir)
    {
        var dir = Directory.Exists(dataDir) ? dataDir : Path.GetDirectoryName(dataDir) ?? "/";
        // The volume the data dir is on (statvfs of the directory itself): a data dir on another disk than / has that
        // disk's room, which is what SQLite writes to. (Path.GetPathRoot is "/" for every path on macOS and Linux.)
        // The nearest folder that exists (a data dir not made yet: its parents), else "/": DriveInfo of a missing path throws.
        var existing = Path.GetFullPath(dir);
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
            existing = parent;
        var free = new DriveInfo(Directory.Exists(existing) ? existing : "/").AvailableFreeSpace;
        var mb = free / (1024 * 1024);
        return mb switch
        {
            < 200 => new("Disk space", Check.Fail, $"{mb} MB free for {dataDir}", "Free some space: SQLite needs room to write and checkpoint."),
            < 1024 => new("Disk space", Check.Warn, $"{mb} MB free for {dataDir}", "Free some space soon.", Required: false),
            _ => new("Disk space", Check.Ok, $"{mb / 1024.0:0.#} GB free for {dataDir}"),
        };
    }

    private static Check DatabaseCheck(string dataDir)
    {
        var path = Path.Combine(dataDir, "lineagent.db");
        var backups = DatabaseBackups.Describe(dataDir, DateTimeOffset.UtcNow);
        var restore = $"Stop the agent and restore the last good copy: lineagent restore --data-dir {DatabaseFile.ShellQuote(dataDir)}";
        if (!File.Exists(path))
            return new("Database integrity", Check.Skip, $"{path} does not exist yet (created at the first start); {backups}", Required: false);
        if (new FileInfo(path).Length == 0)
            return new("Database integrity", Check.Fail, $"{path} is empty (0 bytes): its data is gone; {backups}", restore);
        try
        {
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA quick_check;";
            var result = cmd.ExecuteScalar() as string;
            var version = Migrator.UserVersion(c);
            var known = Migrator.Load().Count;
            if (result != "ok")
                return new("Database integrity", Check.Fail, $"quick_check: {result}; {backups}", restore);
            if (version > known)
                return new("Database integrity", Check.Fail, $"schema version {version} is newer than this agent ({known})", "Install the newer agent again.");
            return new("Database integrity", Check.Ok, $"quick_check ok, schema version {version}/{known}, {new FileInfo(path).Length / 1024} KB; {backups}");
        }
        catch (SqliteException e)
        {
            return new("Database integrity", Check.Fail, $"cannot open {path}: {e.Message}; {backups}", $"Check the file's permissions. If it is damaged: {restore}");
        }
    }
}

using System.CommandLine;
using System.CommandLine.Parsing;
using LineAgent.Hosting;

namespace LineAgent.Cli;

/// <summary>`lineagent [run] [--data-dir DIR] [--urls URL] [--dry-run] [--Section:Key=value ...]` and the client commands.</summary>
public static partial class AgentCli
{
    public static readonly Option<string?> DataDir = new("--data-dir")
    {
        Description = "Data directory (database, token, outbox). Default: ~/Library/Application Support/LineAgent on macOS, $XDG_DATA_HOME/lineagent elsewhere.",
        Recursive = true,
    };

    public static readonly Option<string?> Urls = new("--urls")
    {
        Description = $"Listen URL(s), ';'-separated. Default {ApiOptions.DefaultUrl} (loopback only).",
        Recursive = true,
    };

    public static readonly Option<bool> DryRun = new("--dry-run")
    {
        Description = "Write every send to <data dir>/outbox instead of sending (Agent:DryRun=true).",
    };

    public static async Task<int> InvokeAsync(string[] args)
    {
        var root = new RootCommand("LineAgent: sends iMessage, SMS and email from this Mac, now or on schedule.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        root.Options.Add(DataDir);
        root.Options.Add(Urls);
        root.Options.Add(DryRun);
        root.SetAction((result, _) => RunAgentAsync(result));

        var run = new Command("run", "Run the agent in the foreground (what launchd starts).") { TreatUnmatchedTokensAsErrors = false };
        run.Options.Add(DryRun);
        run.SetAction((result, _) => RunAgentAsync(result));
        root.Subcommands.Add(run);

        foreach (var client in ClientCommands.Create())
            root.Subcommands.Add(client);
        root.Subcommands.Add(MenuBarRecords.Create());
        root.Subcommands.Add(RestoreCommand.Create());
        root.Subcommands.Add(OpenApiCommand.Create());
        root.Subcommands.Add(OpenCommand.Create());

        var parsed = root.Parse(args);
        // Every command takes settings as tokens (--Section:Key=value). Anything else the parser did not match is a typo:
        // a word after `run` is a command this build does not have (it must never start a second agent), `--dryrun`
        // must not start a live agent, and `send ... --att 2030-...` must not send now what was meant for later.
        // First: a setting taken as the missing argument would otherwise be reported as the real argument that follows it.
        if (OptionTakenAsArgument(parsed) is { } taken)
        {
            Console.Error.WriteLine(taken);
            return 1;
        }
        var command = parsed.CommandResult.Command;
        if (UnmatchedProblem(parsed.UnmatchedTokens, command, root,
                agentCommand: command == root || command == run, asksTheAgent: ClientCommands.AsksTheAgent.Contains(command.Name)) is { } problem)
        {
            Console.Error.WriteLine(problem);
            return 1;
        }
        // A parse error (a value out of range, an argument missing): each once, and where to look, not the whole help
        // after it (40 lines for `list --limit 100000` buried the one that mattered).
        if (parsed.Errors.Count > 0 && parsed.Action is System.CommandLine.Invocation.ParseErrorAction)
        {
            foreach (var message in parsed.Errors.Select(e => e.Message).Distinct())
                Console.Error.WriteLine(message);
            var path = new List<string>();
            for (var r = parsed.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
                path.Insert(0, r.Command == root ? "lineagent" : r.Command.Name);
            Console.Error.WriteLine($"{string.Join(' ', path)} --help lists what it takes.");
            return 1;
        }
        // The host handles SIGTERM/Ctrl+C itself (graceful shutdown); the parser must not.
        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (CliProblem e)
        {
            // Input a command cannot use (an --url that is no URL, a file it cannot write): one line, no stack trace.
            Console.Error.WriteLine(e.Message);
            return 1;
        }
        catch (Exception e) when (ConfigurationProblem.UnreadableFile(e) is { } unreadable)
        {
            // <data dir>/lineagent.json that is not JSON: every command reads it (run, doctor, token, ...).
            Console.Error.WriteLine(unreadable);
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
        catch (Exception e) when (ConfigurationProblem.Describe(e) is { } line)
        {
            // A command that builds the agent's host without running it (openapi) meets the same refusals as run (review).
            Console.Error.WriteLine(line);
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
        catch (UnauthorizedAccessException e)
        {
            // A file of the data dir only another user may read (one `sudo lineagent run` leaves them root's): one line that names
            // it and the way back, not "unexpected error" and 20 lines of stack (probe I).
            Console.Error.WriteLine($"lineagent: {e.Message} Files of the data directory must belong to the user who runs lineagent " +
                                    "(a `sudo lineagent ...` leaves them root's: sudo chown -R \"$(id -un)\" on the data directory gives them back).");
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Anything else is a bug: its stack trace, as the parser's own handler printed it, and exit 1.
            Console.Error.WriteLine($"lineagent: unexpected error: {e}");
            return 1;
        }
    }

    /// <summary>
    /// A command's argument that got an option or a setting: the parser gives a pending argument the next token, whatever it
    /// is, so `send +1202... $EMPTY --Api:Token=...` sent the setting (the API token) as the message (probe). A token is
    /// taken for one when it is `--` and a letter, then no space before any '=': `--Api:Token=...`, `--bogus`. Text such
    /// as "-Thanks", "- see you" or "--- soon" is still text, and anything after a `--` is taken as it is. Null when
    /// there is none.
    /// </summary>
    internal static string? OptionTakenAsArgument(ParseResult parsed)
    {
        var afterDoubleDash = new HashSet<Token>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < parsed.Tokens.Count; i++)
            if (parsed.Tokens[i].Type == TokenType.DoubleDash)
            {
                afterDoubleDash.UnionWith(parsed.Tokens.Skip(i + 1));
                break;
            }
        for (var r = parsed.CommandResult; r is not null; r = r.Parent as CommandResult)
        {
            var arguments = r.Command.Arguments;
            foreach (var argument in r.Children.OfType<ArgumentResult>())
                foreach (var token in argument.Tokens)
                {
                    if (afterDoubleDash.Contains(token) || !OptionLike().IsMatch(token.Value))
                        continue;
                    // A setting's value may be a secret (--Api:Token=...): named up to its '=' only.
                    var shown = token.Value.IndexOf('=') is var eq and > 0 ? token.Value[..eq] + "=..." : token.Value;
                    var name = argument.Argument.Name;
                    var order = string.Join(" ", arguments.Select(a => $"<{a.Name}>"));
                    return $"lineagent {r.Command.Name}: '{shown}' was taken as the <{name}>. Nothing was done. Give {order} first, then options and settings; " +
                        $"a <{name}> that starts with -- goes after a --.";
                }
        }
        return null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^--\p{L}[^\s=]*(=.*)?$", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex OptionLike();

    /// <summary>
    /// The configuration sections a setting on the command line may name, with the options type each binds to (its
    /// properties are the keys under it); null: any key (Logging, Kestrel). Lines are keyed by index or name.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, Type?> SettingSections = new Dictionary<string, Type?>(StringComparer.OrdinalIgnoreCase)
    {
        [AgentOptions.Section] = typeof(AgentOptions), [ApiOptions.Section] = typeof(ApiOptions), [SchedulingOptions.Section] = typeof(SchedulingOptions),
        [Storage.StorageOptions.Section] = typeof(Storage.StorageOptions), ["Lines"] = typeof(Dictionary<string, Lines.LineOptions>),
        [Webhooks.WebhookOptions.Section] = typeof(Webhooks.WebhookOptions), [Channels.Email.EmailOptions.Section] = typeof(Channels.Email.EmailOptions),
        [Channels.Twilio.TwilioOptions.Section] = typeof(Channels.Twilio.TwilioOptions), [Channels.ResilienceOptions.Section] = typeof(Channels.ResilienceOptions),
        [WebConsole.ConsoleOptions.Section] = typeof(WebConsole.ConsoleOptions), [Bridge.BridgeOptions.Section] = typeof(Bridge.BridgeOptions),
        ["Logging"] = null, ["Kestrel"] = null,
    };

    /// <summary>The host's own settings that tools such as WebApplicationFactory pass.</summary>
    private static readonly string[] HostSettings = ["environment", "contentRoot", "applicationName", "hostBuilder"];

    /// <summary>
    /// ASP.NET Core's settings that this agent replaces by its own: `AllowedHosts` would answer 400 to 127.0.0.1 itself,
    /// and the others are overridden (Api:Urls, Agent:ShutdownTimeout), so they would be taken and then ignored.
    /// </summary>
    private static readonly Dictionary<string, string> ReplacedSettings = new(StringComparer.OrdinalIgnoreCase)
    {
        ["AllowedHosts"] = "--Api:AllowedHosts", ["urls"] = "--urls", ["http_ports"] = "--urls", ["https_ports"] = "--urls",
        ["shutdownTimeoutSeconds"] = "--Agent:ShutdownTimeout",
    };

    /// <summary>
    /// Why <paramref name="key"/> (Section:Key:...) names no setting, read against the options types' properties; null when
    /// it names one. `Agent:DryRunn=true` was taken and ignored: a live agent where a dry run was meant.
    /// </summary>
    public static string? SettingProblem(string key) => SettingProblem(key, out _);

    /// <summary>As <see cref="SettingProblem(string)"/>; <paramref name="leaf"/>: the type of the value the key names (null: unknown).</summary>
    public static string? SettingProblem(string key, out Type? leaf)
    {
        leaf = null;
        var parts = key.Split(':');
        if (HostSettings.Contains(parts[0], StringComparer.OrdinalIgnoreCase))
            return null;
        if (ReplacedSettings.TryGetValue(parts[0], out var instead))
            return $" this agent does not read it; use {instead}.";
        if (parts.Length < 2 || !SettingSections.TryGetValue(parts[0], out var type))
            return "";
        for (var i = 1; i < parts.Length && type is not null; i++)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
            {
                type = type.GetGenericArguments()[1]; // any key
                continue;
            }
            if (type != typeof(string) && type.GetInterfaces().FirstOrDefault(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IEnumerable<>)) is { } list)
            {
                if (!int.TryParse(parts[i], out _))
                    return $" '{string.Join(':', parts[..i])}' is a list: its entries are numbered ({string.Join(':', parts[..i])}:0).";
                type = list.GetGenericArguments()[0];
                continue;
            }
            if (SingleValue(type))
                return $" '{string.Join(':', parts[..i])}' is a single value.";
            var properties = type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance).Where(p => p.CanWrite).ToList();
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, parts[i], StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                var near = Api.AgentExceptionHandler.Closest(parts[i], properties.Select(p => p.Name).ToList());
                return near is null
                    ? $" {string.Join(':', parts[..i])} has no setting '{parts[i]}' (it has {string.Join(", ", properties.Select(p => p.Name))})."
                    : $" {string.Join(':', parts[..i])} has no setting '{parts[i]}'. Did you mean {string.Join(':', parts[..i])}:{near}?";
            }
            type = property.PropertyType;
        }
        // A value given to a group of settings (Window, Days) is dropped by the binder: `Days=Monday` left every day open.
        if (type is not null && !SingleValue(Nullable.GetUnderlyingType(type) ?? type))
            return $" {key} is a group of settings; give one of them ({key}:{(type.IsGenericType && type != typeof(string) && type.GetGenericTypeDefinition() != typeof(Dictionary<,>) ? "0" : "...")}=value).";
        leaf = type;
        return null;
    }

    private static bool SingleValue(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(decimal) || type == typeof(Uri)
        || type == typeof(DateTimeOffset) || type == typeof(DateTime);

    /// <summary>
    /// The first token the parser left that is no setting, as one line; null when every one is. The configuration's
    /// command-line reader takes `--key=value`, `--key value`, `/key value` and `key=value`; here the key must also name
    /// one of <see cref="SettingSections"/> (`--Agent:DryRun=true`), so that a misspelt option is not read as a setting.
    /// </summary>
    /// <param name="asksTheAgent">A command that only asks the running agent (send, list, status...): of the settings it takes only
    /// those it reads itself (<see cref="ClientCommands.ClientSettings"/>). `send --Agent:DryRun=true` was taken, and the running
    /// live agent sent the message (probe I).</param>
    public static string? UnmatchedProblem(IReadOnlyList<string> tokens, Command command, RootCommand root, bool agentCommand, bool asksTheAgent = false)
    {
        var name = agentCommand ? "lineagent" : $"lineagent {command.Name}";
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var dashed = token.StartsWith('-') || token.StartsWith('/');
            if (!dashed && !token.Contains('='))
                return agentCommand
                    ? $"lineagent: '{token}' is not a lineagent command. Commands: {string.Join(", ", root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))} (lineagent --help)."
                    : $"{name}: unexpected '{token}'.{(command.Arguments.Count > 0 ? " A message with spaces goes in quotes;" : "")} {name} --help lists what it takes.";
            var key = token.TrimStart('-', '/');
            var needsValue = false;
            if (key.IndexOf('=') is var equals and >= 0)
                key = key[..equals];
            else if (dashed)
            {
                // The next token is its value. None, or another option, is a flag-like setting the reader drops without a
                // word: `run --Agent:DryRun` last started a live agent, and `--Api:Token --Agent:DryRunn=true` took the typo as a token.
                needsValue = i + 1 >= tokens.Count || tokens[i + 1].StartsWith("--", StringComparison.Ordinal);
                i++;
            }
            var settingProblem = SettingProblem(key);
            if (settingProblem is null && asksTheAgent && !ClientCommands.ClientSettings.Contains(key))
                return $"{name}: '{Api.Problems.Echo(token)}' is a setting of the agent itself, and {name} only asks the agent that is running, which " +
                       $"keeps its own settings. Give it to `lineagent run` or lineagent.json, then restart the agent. {name} takes: " +
                       $"{string.Join(", ", ClientCommands.ClientSettings.Order(StringComparer.Ordinal).Select(s => $"--{s}=..."))}.";
            if (settingProblem is null && needsValue)
                return $"{name}: the setting '{Api.Problems.Echo(token)}' has no value; write {Api.Problems.Echo(token)}=value " +
                       $"(such as {(asksTheAgent ? "--Api:Token=..." : "--Agent:DryRun=true")}).";
            if (settingProblem is null)
                continue;
            if (settingProblem.Length > 0)
                return $"{name}: unknown setting '{Api.Problems.Echo(token)}':{settingProblem}";
            var options = command.Options.Concat(command == root ? [] : root.Options.Where(o => o.Recursive)).Where(o => !o.Hidden)
                .SelectMany(o => o.Aliases.Prepend(o.Name)).Select(n => n.TrimStart('-'))
                .Where(n => n.Length > 1 && char.IsAsciiLetter(n[0])).Distinct().ToList(); // not help's "/h" and "-?": `-x` was told "Did you mean --/h?"
            if (options.Contains(key, StringComparer.OrdinalIgnoreCase))
                // The option itself, after "--" (which makes every later token an argument).
                return $"{name}: '{Api.Problems.Echo(token)}' comes after '--', which ends the options; put the options before it.";
            var near = Api.AgentExceptionHandler.Closest(key, options) is { } closest ? $" Did you mean --{closest}?" : "";
            return $"{name}: unknown option '{Api.Problems.Echo(token)}'.{near} Settings are given as --Section:Key=value " +
                $"(such as {(asksTheAgent ? "--Api:Token=..." : "--Agent:DryRun=true")}); {name} --help lists the options.";
        }
        return null;
    }

    /// <summary>
    /// How to start the agent, for the commands that found it not running: on a Mac the LaunchAgent too; elsewhere the
    /// dry run (there is no Messages.app: a live `run` fails each iMessage channel_unavailable), as the README begins.
    /// </summary>
    internal static string StartAdvice => OperatingSystem.IsMacOS()
        ? "lineagent run (installed: launchctl kickstart -k gui/$UID/com.lineagent.agent)"
        : "lineagent run --dry-run (this is not a Mac: nothing can go through Messages here)";

    /// <summary>Where the agent's log is: the LaunchAgent's files on a Mac; elsewhere the terminal that runs it.</summary>
    internal static string LogAdvice => OperatingSystem.IsMacOS() ? "~/Library/Logs/LineAgent/" : "the output of the terminal that runs it";

    private const string PortAdvice = "Another program (or another agent) listens there: stop it, or give this agent another port with --urls http://127.0.0.1:<port>.";

    /// <summary>The first of the listen URLs whose loopback or IP address:port another socket holds, as one line; null when all are free.</summary>
    public static string? PortInUse(string urls)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Port <= 0)
                continue;
            var address = uri.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? System.Net.IPAddress.Loopback
                : System.Net.IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) ? ip : null;
            if (address is null)
                continue;
            var listener = new System.Net.Sockets.TcpListener(address, uri.Port);
            try
            {
                listener.Start();
            }
            catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
            {
                return $"lineagent: {url} is in use. {PortAdvice}";
            }
            catch (System.Net.Sockets.SocketException)
            {
                continue; // not this check's to judge (an address this machine does not have): Kestrel says so
            }
            finally
            {
                listener.Stop();
            }
        }
        return null;
    }

    /// <summary>Whether the host's server is Kestrel, which binds Api:Urls (resolving it creates the one the host then starts).</summary>
    private static bool ListensOnSockets(WebApplication app) =>
        app.Services.GetService<Microsoft.AspNetCore.Hosting.Server.IServer>()?.GetType().Assembly.GetName().Name?
            .StartsWith("Microsoft.AspNetCore.Server.Kestrel", StringComparison.Ordinal) ?? true;

    private static IOException? AddressInUse(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++, e = e.InnerException)
            if (e is IOException io && io.InnerException?.GetType().Name == "AddressInUseException")
                return io;
        return null;
    }

    /// <summary>Options given by name become configuration keys; any other tokens pass through as configuration.</summary>
    public static Dictionary<string, string?> Overrides(ParseResult result)
    {
        var overrides = new Dictionary<string, string?>();
        if (result.GetValue(DataDir) is { } dir) overrides["Agent:DataDir"] = dir;
        if (result.GetValue(Urls) is { } urls) overrides["Api:Urls"] = urls;
        if (result.GetValue(DryRun)) overrides["Agent:DryRun"] = "true";
        return overrides;
    }

    private static async Task<int> RunAgentAsync(ParseResult result)
    {
        try
        {
            var app = AgentHost.Build(result.UnmatchedTokens.ToArray(), Overrides(result));
            // Validate the options before the host starts: a failure in StartAsync is logged with its stack trace
            // before it reaches the one-line handler below.
            app.Services.GetService<Microsoft.Extensions.Options.IStartupValidator>()?.Validate();
            // A second agent on a data dir that exists is told so (exit 78) before the port is checked: "port in use, give
            // another port" would only lead it to the lock. A new data dir is nobody's yet, and is not made before the checks.
            if (Directory.Exists(app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AgentOptions>>().Value.ResolveDataDir()))
                app.Services.GetRequiredService<DataDirLock>();
            // A port in use is told in one line before the host starts (it would log a stack trace twice).
            // Kestrel:Endpoints, when set, replaces Api:Urls: the addresses to check are then Kestrel's to name. Only Kestrel
            // listens on them: a host given another server (the tests' in-memory one) must not refuse to start because
            // something else, such as the agent the README starts, holds the default port.
            if (!app.Configuration.GetSection("Kestrel:Endpoints").Exists() && ListensOnSockets(app)
                && PortInUse(app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ApiOptions>>().Value.Urls) is { } inUse)
            {
                Console.Error.WriteLine(inUse);
                return 1;
            }
            var exit = app.Services.GetRequiredService<Storage.AgentExit>();
            await AgentHost.Prepare(app).RunAsync();
            return exit.Code; // 75 when the database went away under it
        }
        catch (Exception e) when (AddressInUse(e) is { } io)
        {
            // Taken between the check and the start.
            Console.Error.WriteLine($"lineagent: {io.Message} {PortAdvice}");
            return 1;
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("Unable to configure HTTPS endpoint", StringComparison.Ordinal))
        {
            // Was "unexpected error" and Kestrel's stack trace (probe I).
            Console.Error.WriteLine("lineagent: Api:Urls asks for https://, and no certificate is set up for it: use http:// on loopback (the default, " +
                                    $"{ApiOptions.DefaultUrl}: the API does not leave this Mac), or configure Kestrel:Certificates:Default.");
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
        catch (Exception e) when (Storage.DatabaseUnusableException.Find(e) is { } unusable)
        {
            // One line that names the file, what is wrong and what to do; no stack trace.
            Console.Error.WriteLine(unusable.Message);
            return unusable.ExitCode;
        }
        catch (Exception e) when (StartupRefusedException.Find(e) is { } refused)
        {
            Console.Error.WriteLine(refused.Message);
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
        catch (Exception e) when (ConfigurationProblem.Describe(e) is { } line)
        {
            // A setting that does not parse or does not validate: one line naming it, no stack trace.
            Console.Error.WriteLine(line);
            return Storage.DatabaseUnusableException.ExitCodeConfig;
        }
    }
}

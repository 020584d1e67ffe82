using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace LineAgent.Hosting;

public sealed class AgentOptions
{
    public const string Section = "Agent";

    /// <summary>Where the database, token, outbox and lock live. Empty = the platform default.</summary>
    public string? DataDir { get; set; }

    /// <summary>Every send is written to &lt;data dir&gt;/outbox instead of a real channel.</summary>
    public bool DryRun { get; set; }

    /// <summary>Pace dry-run sends like real ones (off by default: the outbox has no account to protect).</summary>
    public bool DryRunPacing { get; set; }

    /// <summary>How long a dry-run hand-off takes; lets a demo or test see `sending` for a while.</summary>
    public TimeSpan DryRunSendDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How many dry-run sends of one line may be in flight at once while the line is not paced (each is its own
    /// outbox file). Every one is handed off on disk before its file is written, so a crash leaves at most this
    /// many to reconcile, and the outbox settles each exactly. Real channels send one at a time per line.
    /// </summary>
    [Range(1, 64)]
    public int DryRunParallelSends { get; set; } = 16;

    /// <summary>
    /// How long a stop (SIGTERM from launchd) may take: sends in flight finish within it. Keep it below
    /// the LaunchAgent's ExitTimeOut (30 s) so launchd never has to SIGKILL a clean shutdown.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>The LaunchAgent's label the doctor checks (default com.lineagent.agent; InstallChecks).</summary>
    public string? LaunchdLabel { get; set; }

    /// <summary>Where the doctor looks for the installed agent (default: what the installed plist says; InstallChecks).</summary>
    public string? InstallPrefix { get; set; }

    /// <summary>ISO 3166 region used to read national phone numbers, e.g. "US" or "GB".</summary>
    [Required, RegularExpression("^[A-Z]{2}$")]
    public string DefaultRegion { get; set; } = "US";

    public string ResolveDataDir() => string.IsNullOrWhiteSpace(DataDir) ? DefaultDataDir() : Path.GetFullPath(DataDir);

    /// <summary>
    /// The data directory from Agent:DataDir alone: binding the whole section stopped at its first bad value (a stack
    /// trace in the CLI, and only that value named at start, before AgentHost.RefuseBadValues could name them all).
    /// </summary>
    public static string DataDirFrom(IConfiguration config) => new AgentOptions { DataDir = config[$"{Section}:{nameof(DataDir)}"] }.ResolveDataDir();

    /// <remarks>
    /// The home directory as HOME (or the user database) names it, whether or not it exists yet (it is created with the data
    /// dir): verified, a HOME that did not exist came back empty, and the data dir became ".local/share/lineagent" under the
    /// working directory (black-box probe). With no home at all, nothing relative is guessed: Agent:DataDir is asked for.
    /// An XDG_DATA_HOME that is not absolute is ignored, as the XDG Base Directory specification says.
    /// </remarks>
    public static string DefaultDataDir()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify);
        if (string.IsNullOrWhiteSpace(home) || !Path.IsPathRooted(home))
            throw new StartupRefusedException(
                "lineagent: no home directory (HOME is not set), so there is no default data directory; set Agent:DataDir (--data-dir, or LINEAGENT__Agent__DataDir).");
        if (OperatingSystem.IsMacOS())
            return Path.Combine(home, "Library", "Application Support", "LineAgent");
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        return Path.Combine(string.IsNullOrWhiteSpace(xdg) || !Path.IsPathRooted(xdg) ? Path.Combine(home, ".local", "share") : xdg, "lineagent");
    }
}

public sealed class ApiOptions
{
    public const string Section = "Api";
    public const string DefaultUrl = "http://127.0.0.1:5117";

    /// <summary>Semicolon-separated listen URLs; loopback only unless a token is configured.</summary>
    [Required]
    public string Urls { get; set; } = DefaultUrl;

    /// <summary>Bearer token; when empty one is generated into &lt;data dir&gt;/api-token.</summary>
    public string? Token { get; set; }

    /// <summary>How long a send-now request waits for the channel before answering `sending`.</summary>
    public double SendWaitSeconds { get; set; } = 30;

    /// <summary>
    /// Semicolon-separated host names requests may carry besides localhost and IP addresses (see
    /// <see cref="LineAgent.Api.HostGuardMiddleware"/>); needed only for a name of this Mac while it listens beyond loopback.
    /// </summary>
    public string? AllowedHosts { get; set; }
}

public sealed class SchedulingOptions
{
    public const string Section = "Scheduling";

    /// <summary>A schedule missed (agent down) by more than this fails with missed_schedule.</summary>
    public TimeSpan MaxLateness { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Idempotency keys are kept at least this long.</summary>
    public TimeSpan IdempotencyKeyLifetime { get; set; } = TimeSpan.FromHours(48);
}

/// <summary>
/// The DataAnnotations checks of <see cref="AgentOptions"/>, generated at build time: ValidateDataAnnotations() would read
/// them by reflection at start (TypeDescriptor and its converters, about 1 MB of memory at start; README Performance).
/// </summary>
[OptionsValidator]
public sealed partial class AgentOptionsValidator : IValidateOptions<AgentOptions>;

/// <summary>The DataAnnotations checks of <see cref="ApiOptions"/>, generated at build time.</summary>
[OptionsValidator]
public sealed partial class ApiOptionsValidator : IValidateOptions<ApiOptions>;

/// <summary>
/// Agent:DefaultRegion as a region libphonenumber has numbers for: `ZZ` (its "unknown region") passed the pattern, and
/// every national number was then refused as "unknown country code" with no word about the setting (new-user pass).
/// </summary>
public sealed class AgentOptionsRegion : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions options)
    {
        var problems = new List<string>();
        if (options.DefaultRegion is { Length: 2 } region && region.All(char.IsAsciiLetterUpper)
            && !PhoneNumbers.PhoneNumberUtil.GetInstance().GetSupportedRegions().Contains(region)) // the pattern's own check names any other value
            problems.Add($"Agent:DefaultRegion '{region}' is not a region with phone numbers; give an ISO 3166 code such as US, GB or DE " +
                $"(set by {ConfigurationProblem.EnvironmentName("Agent:DefaultRegion")}, lineagent.json or --Agent:DefaultRegion=...).");
        // Durations the code cannot use: a negative delay throws in Task.Delay at each send, a negative stop time in the host.
        if (options.ShutdownTimeout < TimeSpan.Zero || options.ShutdownTimeout > TimeSpan.FromDays(1))
            problems.Add("Agent:ShutdownTimeout must be between 00:00:00 and a day.");
        if (options.DryRunSendDelay < TimeSpan.Zero || options.DryRunSendDelay > TimeSpan.FromHours(1))
            problems.Add("Agent:DryRunSendDelay must be between 00:00:00 and an hour.");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

/// <summary>
/// Api:SendWaitSeconds as a finite 0-600 ([Range] on a double throws OverflowException for NaN instead of failing).
/// </summary>
public sealed class ApiOptionsLimits : IValidateOptions<ApiOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiOptions options)
    {
        var problems = new List<string>();
        if (!(double.IsFinite(options.SendWaitSeconds) && options.SendWaitSeconds is >= 0 and <= 600))
            problems.Add($"Api:SendWaitSeconds must be between 0 and 600 (seconds; set by {ConfigurationProblem.EnvironmentName("Api:SendWaitSeconds")}, lineagent.json or --Api:SendWaitSeconds=...).");
        // `--urls notaurl` and a port of 99999 were told "non-loopback ... set Api:Token", and with a token set the host failed
        // with a stack trace (probe I): each address named with what is wrong.
        foreach (var url in (options.Urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (UrlProblem(url) is { } problem)
                problems.Add($"Api:Urls '{Api.Problems.Echo(url)}' {problem} (such as {ApiOptions.DefaultUrl}; set by --urls, {ConfigurationProblem.EnvironmentName("Api:Urls")} or lineagent.json).");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>What Kestrel would refuse of one address of Api:Urls (scheme://host:port, as UseUrls reads it), or null.</summary>
    private static string? UrlProblem(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0 || url[..scheme].ToLowerInvariant() is not ("http" or "https"))
            return "is not an http:// address";
        var rest = url[(scheme + 3)..];
        var authority = rest.Split('/')[0];
        if (authority.Length == 0)
            return "has no host";
        var colon = authority.LastIndexOf(':');
        if (colon >= 0 && colon > authority.LastIndexOf(']')
            && !(int.TryParse(authority[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port <= 65535))
            return "has a port that is not a number from 0 to 65535";
        return null;
    }
}

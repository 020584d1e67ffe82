using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;

namespace LineAgent.Cli;

/// <summary>A command's input it cannot use: its message is the one line the CLI prints (exit 1).</summary>
public sealed class CliProblem(string message) : Exception(message);

/// <summary>The CLI's way to the running agent: its URL from Api:Urls (or --url) and its token from the data dir.</summary>
public sealed class AgentClient : IDisposable
{
    private readonly HttpClient _http;

    public AgentClient(IConfiguration config, string? url)
    {
        // --url (or Api:Urls given to this command, on its command line or in LINEAGENT__Api__Urls), else where the agent of this
        // data dir says it listens (it may have been started with --urls), else Api:Urls of lineagent.json or the default.
        var address = url
                      ?? (GivenHere(config, "Api:Urls") is { } given ? LocalUrl(given) : null)
                      ?? DataDirectory.ReadAddress(ClientCommands.DataDirOf(config))
                      ?? LocalUrl(config["Api:Urls"] ?? ApiOptions.DefaultUrl);
        if (!Uri.TryCreate(address, UriKind.Absolute, out var baseUrl) || (baseUrl.Scheme != Uri.UriSchemeHttp && baseUrl.Scheme != Uri.UriSchemeHttps))
            throw new CliProblem($"lineagent: {(url is null ? "Api:Urls" : "--url")} '{Problems.Echo(address)}' is not an http:// address such as {ApiOptions.DefaultUrl}.");
        BaseUrl = baseUrl;
        // Read without creating the data directory: a mistyped --data-dir must not leave an empty one behind.
        TokenFile = DataDirectory.TokenFileIn(ClientCommands.DataDirOf(config));
        Token = config["Api:Token"] is { Length: > 0 } t ? t : ApiToken.ReadFile(TokenFile);
        _http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeoutFor(config) };
        if (Token is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
    }

    /// <summary>
    /// How long a request may take: the agent answers a send-now within Api:SendWaitSeconds (0-600) and a health view within
    /// Bridge:HealthWaitForViews (asked for both Messages types), read from the same settings; then a margin. A fixed 60 s cut a
    /// send waiting under Api:SendWaitSeconds 90 short, and the CLI crashed (exit 134) on a message being sent (probe I).
    /// </summary>
    public static TimeSpan TimeoutFor(IConfiguration config)
    {
        var send = double.TryParse(config["Api:SendWaitSeconds"], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var s)
                   && double.IsFinite(s) ? Math.Clamp(s, 0, 600) : 30;
        var health = TimeSpan.TryParse(config["Bridge:HealthWaitForViews"], System.Globalization.CultureInfo.InvariantCulture, out var h)
                     && h >= TimeSpan.Zero ? (h < TimeSpan.FromMinutes(10) ? h : TimeSpan.FromMinutes(10)) : TimeSpan.FromSeconds(2);
        return TimeSpan.FromSeconds(send) + health * 2 + TimeoutMargin;
    }

    public static readonly TimeSpan TimeoutMargin = TimeSpan.FromSeconds(30);

    /// <summary>The value of <paramref name="key"/> when this command was given it (command line, environment), not a file.</summary>
    private static string? GivenHere(IConfiguration config, string key)
    {
        if (config is not IConfigurationRoot root)
            return null;
        string? value = null;
        foreach (var provider in root.Providers)
            if (provider is Microsoft.Extensions.Configuration.CommandLine.CommandLineConfigurationProvider
                    or Microsoft.Extensions.Configuration.EnvironmentVariables.EnvironmentVariablesConfigurationProvider
                    or Microsoft.Extensions.Configuration.Memory.MemoryConfigurationProvider // --urls, --data-dir
                && provider.TryGet(key, out var v))
                value = v;
        return value;
    }

    public TimeSpan Timeout => _http.Timeout;

    public Uri BaseUrl { get; }
    public string? Token { get; }

    /// <summary>Where the token is read from when Api:Token is not set.</summary>
    public string TokenFile { get; }

    /// <summary>What to say when there is no token to send (every /api route answers 401 without one).</summary>
    public string NoToken =>
        $"No API token: {TokenFile} does not exist. The agent writes it when it first starts: {AgentCli.StartAdvice}. Or pass the agent's --data-dir or --Api:Token.";

    /// <summary>The first listen URL, with a wildcard host turned into loopback.</summary>
    public static string LocalUrl(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? ApiOptions.DefaultUrl;
        return first.Replace("://*", "://127.0.0.1").Replace("://+", "://127.0.0.1").Replace("://0.0.0.0", "://127.0.0.1");
    }

    public async Task<(int Status, JsonNode? Body)> SendAsync(HttpMethod method, string path, object? body = null, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
            request.Content = JsonContent(body);
        using var response = await _http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        JsonNode? json = null;
        try { json = text.Length > 0 ? JsonNode.Parse(text) : null; }
        catch (JsonException) { }
        return ((int)response.StatusCode, json);
    }

    public async Task<bool> HealthyAsync(CancellationToken ct)
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(3));
            return (await _http.GetStringAsync("/healthz", cts.Token)).Trim() == "ok";
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            return false;
        }
    }

    private static StringContent JsonContent(object body) =>
        new(JsonSerializer.Serialize(body, AgentJson.Options), System.Text.Encoding.UTF8, "application/json");

    /// <summary>A problem response in one line: detail, and each named field.</summary>
    public static string Describe(int status, JsonNode? body)
    {
        if (body is null) return $"HTTP {status}";
        var detail = body["detail"]?.GetValue<string>() ?? body["title"]?.GetValue<string>() ?? body.ToJsonString();
        var code = body["code"]?.GetValue<string>();
        return $"HTTP {status}{(code is null ? "" : $" {code}")}: {detail}";
    }

    public void Dispose() => _http.Dispose();
}

using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;

namespace LineAgent.Cli;

/// <summary>The CLI's way to the running agent: its URL from Api:Urls (or --url) and its token from the data dir.</summary>
public sealed class AgentClient : IDisposable
{
    private readonly HttpClient _http;

    public AgentClient(IConfiguration config, string? url)
    {
        BaseUrl = new Uri(url ?? LocalUrl(config["Api:Urls"] ?? ApiOptions.DefaultUrl));
        Token = config["Api:Token"] is { Length: > 0 } t ? t : ApiToken.ReadFile(new DataDirectory(ClientCommands.DataDirOf(config)).TokenFile);
        _http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        if (Token is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
    }

    public Uri BaseUrl { get; }
    public string? Token { get; }

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

using System.Text;
using LineAgent.Hosting;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Api;

/// <summary>
/// The bearer token: Api:Token when configured, else the one in &lt;data dir&gt;/api-token, generated
/// (mode 0600) on first start.
/// </summary>
public sealed class ApiToken
{
    private readonly byte[] _bytes;

    public ApiToken(IOptions<ApiOptions> options, DataDirectory dataDir, ILogger<ApiToken>? log = null)
    {
        Value = string.IsNullOrWhiteSpace(options.Value.Token) ? LoadOrCreate(dataDir.TokenFile, log) : options.Value.Token.Trim();
        IsConfigured = !string.IsNullOrWhiteSpace(options.Value.Token);
        _bytes = Encoding.UTF8.GetBytes(Value);
    }

    public string Value { get; }
    public bool IsConfigured { get; }

    /// <summary>
    /// Constant-time comparison: every byte of the token is compared whatever the candidate holds, so the time depends on
    /// the two lengths and never on their contents (a generated token's length is public: "la_" and 48 hex digits). No
    /// hash: SHA-256 would load OpenSSL into the process for the first request on Linux (about 4 MB, README Performance).
    /// </summary>
    public bool Matches(string? candidate) => candidate is not null && Matches(candidate.AsSpan());

    public bool Matches(ReadOnlySpan<char> candidate)
    {
        var length = Encoding.UTF8.GetByteCount(candidate);
        var given = length <= 256 ? stackalloc byte[length] : new byte[length];
        Encoding.UTF8.GetBytes(candidate, given);
        var diff = _bytes.Length ^ given.Length;
        for (var i = 0; i < _bytes.Length; i++)
            diff |= _bytes[i] ^ (i < given.Length ? given[i] : 0);
        return diff == 0;
    }

    public static string? ReadFile(string path) =>
        File.Exists(path) ? File.ReadAllText(path).Trim() is { Length: > 0 } t ? t : null : null;

    private static string LoadOrCreate(string path, ILogger? log)
    {
        if (ReadFile(path) is { } existing)
        {
            // Made readable by others (a copy, a chmod, a restore): back to 0600, as the database files are (probe L).
            if (Storage.DatabaseFile.RestrictFileToOwner(path, log))
                log?.LogWarning("Whoever could read {File} may have the API token: to change it, delete the file and restart the agent " +
                    "(lineagent token prints the new one)", path);
            return existing;
        }
        Span<byte> random = stackalloc byte[24];
        SecureRandom.Fill(random);
        var token = "la_" + Convert.ToHexStringLower(random);
        var temp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.Write(token + "\n");
            writer.Flush();
            stream.Flush(flushToDisk: true); // on disk before the rename: a power cut must not leave an empty api-token
        }
        // Reached only when the file is missing or holds no token (empty or blank: written by hand, or cut short before this
        // fsync existed). Such a file guards nothing, so it is replaced; before, the rename refused it and the agent
        // stopped at every start.
        File.Move(temp, path, overwrite: File.Exists(path));
        return token;
    }
}

/// <summary>Every /api route needs `Authorization: Bearer &lt;token&gt;`, or the web console's session cookie (changes also its anti-forgery header).</summary>
public sealed class TokenAuthMiddleware(RequestDelegate next, ApiToken token, WebConsole.ConsoleSessions sessions)
{
    public Task InvokeAsync(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) && token.Matches(header.AsSpan(scheme.Length).Trim()))
            return next(context);
        if (header.Length == 0)
            switch (sessions.Check(context))
            {
                case WebConsole.SessionCheck.Allowed: return next(context);
                case WebConsole.SessionCheck.Forged: return WebConsole.ConsoleApi.Forged().ExecuteAsync(context);
            }
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Problems.Of(401, "unauthorized",
                string.IsNullOrEmpty(header) ? "Send the API token as 'Authorization: Bearer <token>' (see `lineagent token`)."
                : !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) ? "The Authorization header must be 'Bearer <token>': the word Bearer, a space, then the token."
                : "The API token is wrong.")
            .ExecuteAsync(context);
    }
}

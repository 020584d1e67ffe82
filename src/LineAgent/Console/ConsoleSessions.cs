using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using LineAgent.Api;
using Microsoft.Extensions.Options;

namespace LineAgent.WebConsole;

/// <summary>Console:* settings.</summary>
public sealed class ConsoleOptions
{
    public const string Section = "Console";

    /// <summary>A browser session ends after this long without a request.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromHours(12);

    /// <summary>And after this long in any case.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>A signed-in browser: the cookie's value (kept only as a hash) and the anti-forgery token its pages send back.</summary>
public sealed class ConsoleSession(string csrfToken, DateTimeOffset createdAt)
{
    public string CsrfToken { get; } = csrfToken;
    public DateTimeOffset CreatedAt { get; } = createdAt;
    public DateTimeOffset LastSeen { get; set; } = createdAt;

    private readonly CancellationTokenSource _ended = new();

    /// <summary>Cancelled when the session is signed out or found expired: what it holds open (the event stream) ends with it.</summary>
    public CancellationToken Ended => _ended.Token;

    internal void Close() => _ended.Cancel();
}

/// <summary>What the session cookie says about an /api request.</summary>
public enum SessionCheck
{
    /// <summary>No cookie, or one this agent does not know (expired, or from before a restart).</summary>
    None,
    Allowed,
    /// <summary>A state change without the anti-forgery header, or from another origin.</summary>
    Forged,
}

/// <summary>
/// Browser sign-in for the console: `lineagent open` asks the agent (with the bearer token) for a one-time
/// link; its code is good once, for a minute, and becomes an HttpOnly, SameSite=Strict session cookie.
/// Sessions live in memory: a restarted agent asks for a new link. Cookie-authenticated state changes must
/// carry the session's anti-forgery token in <see cref="CsrfHeader"/> (a cross-origin page cannot set it
/// without a CORS preflight, which the agent never grants) and, when the browser names an Origin, come from
/// the agent's own origin.
/// </summary>
public sealed class ConsoleSessions(TimeProvider time, IOptions<ConsoleOptions> options)
{
    public const string CsrfHeader = "X-LineAgent-CSRF";
    public static readonly TimeSpan LinkLifetime = TimeSpan.FromMinutes(1);
    private const int MaxOpenLinks = 100;
    private const int MaxSessions = 1000;

    private readonly ConcurrentDictionary<string, DateTimeOffset> _links = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConsoleSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Cookie per port: cookies ignore ports, and two agents on one Mac must not sign each other out.</summary>
    public static string CookieName(HttpContext http) => $"lineagent-session-{http.Connection.LocalPort}";

    /// <summary>A new one-time code, valid for <see cref="LinkLifetime"/>.</summary>
    public (string Code, DateTimeOffset ExpiresAt) CreateLink()
    {
        var now = time.GetUtcNow();
        foreach (var (key, expires) in _links)
            if (expires <= now) _links.TryRemove(key, out _);
        if (_links.Count >= MaxOpenLinks)
            throw new AgentProblemException(429, "too_many_links", "Too many unused console links; wait a minute and ask again.");
        var code = Random();
        var expiresAt = now + LinkLifetime;
        _links[Hash(code)] = expiresAt;
        return (code, expiresAt);
    }

    /// <summary>Spends the code (a second use fails) and starts a session: the cookie value, or null.</summary>
    public string? Redeem(string? code)
    {
        if (string.IsNullOrEmpty(code) || code.Length > 200 || !_links.TryRemove(Hash(code), out var expiresAt))
            return null;
        var now = time.GetUtcNow();
        if (expiresAt <= now)
            return null;
        Prune(now);
        var id = Random();
        _sessions[Hash(id)] = new ConsoleSession(Random(), now);
        return id;
    }

    /// <summary>The live session of this request's cookie, or null (and an expired one is forgotten).</summary>
    public ConsoleSession? Find(HttpContext http)
    {
        if (!TrustedHost(http))
            return null;
        var cookie = http.Request.Cookies[CookieName(http)];
        if (string.IsNullOrEmpty(cookie) || cookie.Length > 200)
            return null;
        var key = Hash(cookie);
        if (!_sessions.TryGetValue(key, out var session))
            return null;
        var now = time.GetUtcNow();
        if (Expired(session, now))
        {
            Remove(key);
            return null;
        }
        session.LastSeen = now;
        return session;
    }

    /// <summary>The session that authenticated this /api request (by its cookie), or null (the bearer token).</summary>
    public static ConsoleSession? Of(HttpContext http) => http.Items[typeof(ConsoleSession)] as ConsoleSession;

    /// <summary>Whether a session is still signed in and within its timeouts, without counting this as a use (an open stream is not activity).</summary>
    public bool IsLive(ConsoleSession session)
    {
        if (session.Ended.IsCancellationRequested)
            return false;
        if (!Expired(session, time.GetUtcNow()))
            return true;
        foreach (var (key, s) in _sessions)
            if (ReferenceEquals(s, session)) Remove(key);
        session.Close();
        return false;
    }

    /// <summary>For /api: reads may use the cookie alone; state changes also need the anti-forgery header and our own origin.</summary>
    public SessionCheck Check(HttpContext http)
    {
        if (Find(http) is not { } session)
            return SessionCheck.None;
        var method = http.Request.Method;
        var allowed = HttpMethods.IsGet(method) || HttpMethods.IsHead(method)
            || (SameOrigin(http) && http.Request.Headers[CsrfHeader].ToString() is { Length: > 0 } header
                && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header), Encoding.UTF8.GetBytes(session.CsrfToken)));
        if (!allowed)
            return SessionCheck.Forged;
        http.Items[typeof(ConsoleSession)] = session;
        return SessionCheck.Allowed;
    }

    public void End(HttpContext http)
    {
        if (http.Request.Cookies[CookieName(http)] is { Length: > 0 and <= 200 } cookie)
            Remove(Hash(cookie));
    }

    private void Remove(string key)
    {
        if (_sessions.TryRemove(key, out var session))
            session.Close();
    }

    public int Count => _sessions.Count;

    /// <summary>
    /// Against DNS rebinding: a page of evil.example whose name has been made to resolve to 127.0.0.1 reaches the
    /// agent with `Host: evil.example`. The console (its cookie and /login) answers only to names no DNS can rebind:
    /// localhost, a loopback address, or the IP address the request arrived on.
    /// </summary>
    public static bool TrustedHost(HttpContext http)
    {
        var host = http.Request.Host.Host;
        if (string.IsNullOrEmpty(host))
            return false;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
            return true;
        if (!IPAddress.TryParse(host.Trim('[', ']'), out var ip))
            return false;
        return IPAddress.IsLoopback(ip) || ip.Equals(http.Connection.LocalIpAddress);
    }

    /// <summary>An Origin header (browsers send it on every cross-origin request and on same-origin POSTs) must be ours.</summary>
    private static bool SameOrigin(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (origin.Length == 0)
            return true;
        return string.Equals(origin, $"{http.Request.Scheme}://{http.Request.Host}", StringComparison.OrdinalIgnoreCase);
    }

    private bool Expired(ConsoleSession s, DateTimeOffset now) =>
        now - s.LastSeen > options.Value.SessionIdleTimeout || now - s.CreatedAt > options.Value.SessionLifetime;

    private void Prune(DateTimeOffset now)
    {
        foreach (var (key, s) in _sessions)
            if (Expired(s, now)) Remove(key);
        // Many sign-ins without sign-outs: the oldest go first.
        if (_sessions.Count >= MaxSessions)
            foreach (var (key, _) in _sessions.OrderBy(kv => kv.Value.LastSeen).Take(_sessions.Count - MaxSessions + 1))
                Remove(key);
    }

    private static string Random() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Hash(string value) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}

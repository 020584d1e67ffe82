using System.Net;
using LineAgent.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Mvc;

namespace LineAgent.Api;

/// <summary>
/// Query strings come from the network: a value with a NUL or another control character is refused before
/// any handler sees it (SQLite would read a NUL as the end of a string). Every such parameter is named.
/// A route that takes no query parameter (none declared with <see cref="OpenApiMetadata.WithQueryParameters{TBuilder}"/>)
/// refuses any, each named as `unknown_parameter`: `POST /api/messages?scheduledAt=...` sent at once what was meant for
/// later, and `POST /api/messages/bulk?dryRun=true` sent for real. A route that declares some checks them itself, with
/// its other problems (<see cref="QueryValues.Unknown"/>).
/// </summary>
public sealed class QueryGuardMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Query.Count == 0)
            return next(context);
        List<FieldProblem>? problems = null;
        foreach (var (key, values) in context.Request.Query)
        {
            if (HasControl(key) || values.Any(v => v is not null && HasControl(v)))
                (problems ??= []).Add(new(SafeName(key), "invalid_query", $"Query parameter '{SafeName(key)}' contains a control character."));
        }
        // A route handler's endpoint only (it has its MethodInfo): routing's own 405 endpoint declares nothing and must stay a 405.
        if (problems is null && context.GetEndpoint() is { } endpoint && endpoint.Metadata.GetMetadata<System.Reflection.MethodInfo>() is not null
            && endpoint.Metadata.GetMetadata<QueryParametersMetadata>() is null)
            QueryValues.Unknown(context.Request.Query.Keys, [], problems = []);
        return problems is not { Count: > 0 } ? next(context) : Problems.Validation(problems).ExecuteAsync(context);
    }

    private static bool HasControl(string s)
    {
        foreach (var c in s)
            if (char.IsControl(c))
                return true;
        return false;
    }

    private static string SafeName(string key) => new(key.Where(c => !char.IsControl(c)).Take(100).ToArray());
}

/// <summary>
/// A body the agent cannot read as sent is refused with 415 before any handler reads it: a compressed one
/// (Content-Encoding gzip, br, ...; reading gzip bytes as JSON or CSV gave a parse error or columns of binary), and
/// one whose Content-Type names a charset other than UTF-8 (the API is UTF-8; an unknown charset on a JSON route was
/// a 500 from the framework's transcoding).
/// </summary>
public sealed class ContentEncodingGuardMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        var encodings = context.Request.Headers.ContentEncoding;
        if (encodings.Count > 0 && !encodings.All(e => string.Equals(e?.Trim(), "identity", StringComparison.OrdinalIgnoreCase)))
        {
            var named = new string(encodings.ToString().Where(c => !char.IsControl(c)).Take(100).ToArray());
            return Problems.Of(415, "unsupported_encoding", $"Content-Encoding '{named}' is not accepted: send the body uncompressed.").ExecuteAsync(context);
        }
        if (context.Request.ContentType is { Length: > 0 } type
            && Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var media)
            && media.Charset.HasValue
            && media.Charset.Value.Trim('"', ' ') is var charset
            && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            var named = new string(charset.Where(c => !char.IsControl(c)).Take(50).ToArray());
            return Problems.Of(415, "unsupported_charset", $"charset '{named}' is not accepted: send the body as UTF-8 (charset=utf-8, or no charset).").ExecuteAsync(context);
        }
        return next(context);
    }
}

/// <summary>Status codes the framework answers itself, and the stable `code` each problem body carries.</summary>
public static class StatusCodes4xx
{
    public static string CodeFor(int status) => status switch
    {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        503 => "unavailable",
        >= 500 => "internal_error",
        _ => "bad_request",
    };

    /// <summary>Every problem body has a `code`, whoever wrote it (the framework's 405/415 too).</summary>
    public static void AddCode(ProblemDetails problem)
    {
        if (!problem.Extensions.ContainsKey("code"))
            problem.Extensions["code"] = CodeFor(problem.Status ?? 500);
    }

    /// <summary>The framework's bare 415 says what the route takes (its Accepts metadata), e.g. application/json.</summary>
    public static void Customize(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        AddCode(problem);
        if (problem.Status == 413 && problem.Detail is null)
            problem.Detail = $"The body is larger than the agent reads ({context.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? 30_000_000:N0} bytes); nothing was stored.";
        if (problem.Status == 415 && problem.Detail is null)
        {
            var accepts = (context.HttpContext.GetEndpoint()?.Metadata.GetOrderedMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>() ?? [])
                .SelectMany(m => m.ContentTypes).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            // Routing answers 415 itself (its accepts policy) with an endpoint of its own that carries no metadata: every
            // route with a body takes JSON, except the CSV import.
            if (accepts.Count == 0)
                accepts = context.HttpContext.Request.Path.StartsWithSegments("/api/leads/import") ? ["text/csv", "multipart/form-data"] : ["application/json"];
            var sent = context.HttpContext.Request.ContentType is { Length: > 0 } t ? $"'{new string(t.Where(c => !char.IsControl(c)).Take(100).ToArray())}'" : "no Content-Type";
            problem.Detail = $"This route takes {string.Join(" or ", accepts)}; the request had {sent}. With curl, add -H 'Content-Type: {accepts[0]}'.";
        }
    }
}

/// <summary>
/// DNS rebinding: a web page whose own name an attacker re-points at 127.0.0.1 reaches the loopback agent as its own
/// origin, so the browser lets it read the answers. Its requests carry that name in Host; the agent answers only
/// requests to localhost, an IP address, or a name listed in Api:AllowedHosts. While the agent listens beyond
/// loopback (with an explicit token) and no Api:AllowedHosts is set, any Host is taken, as clients there use this
/// Mac's names and addresses.
/// </summary>
public sealed class HostGuardMiddleware(RequestDelegate next, IOptions<ApiOptions> api,
    Microsoft.AspNetCore.Hosting.Server.IServer server)
{
    private readonly HashSet<string> _listed = new(
        (api.Value.AllowedHosts ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        StringComparer.OrdinalIgnoreCase);

    private bool? _loopbackOnly;

    public Task InvokeAsync(HttpContext context)
    {
        var host = context.Request.Host;
        if (!host.HasValue || Allowed(host.Host))
            return next(context);
        var name = new string(host.Host.Where(c => !char.IsControl(c)).Take(100).ToArray());
        return Problems.Validation([new("Host", "invalid_host",
            $"This agent answers requests to localhost or an IP address such as 127.0.0.1, not to '{name}' (a name of this Mac can be added with Api:AllowedHosts).")])
            .ExecuteAsync(context);
    }

    private bool Allowed(string host)
    {
        // An address is never rebound (a page's origin would be that address, not a name), so any IP literal is taken:
        // the Mac's own LAN address when it listens beyond loopback, too. Names other than localhost only when listed
        // (*.localhost is not: Safari asks the system resolver, which a hostile DNS server answers).
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || IPAddress.TryParse(host.Trim('[', ']'), out _)
            || _listed.Contains(host))
            return true;
        return _listed.Count == 0 && !LoopbackOnly;
    }

    /// <summary>The addresses Kestrel bound (known once it has started); none known (an in-memory test server) counts as loopback.</summary>
    private bool LoopbackOnly => _loopbackOnly ??=
        (server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses ?? [])
        .All(Hosting.AgentHost.IsLoopback);
}

using LineAgent.Api;
using LineAgent.Batches;
using LineAgent.Leads;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.WebConsole;

public sealed record ConsoleLink(string Url, DateTimeOffset ExpiresAt);

public sealed record PreviewRequest(string? Content, IReadOnlyList<string>? LeadIds);

public sealed record PreviewItem(string LeadId, string? Name, string? Recipient, string? Content, string? MissingField);

public sealed record PreviewResponse(IReadOnlyList<PreviewItem> Items, IReadOnlyList<string> UnknownFields);

/// <summary>
/// The web console: pages at /, /leads, /messages, /batches/{id}, /lines (with a session; else the page that
/// says how to open it), their files under /console/, the one-time link (/login), and the few API routes only
/// the console needs. The pages themselves use the same JSON API as every other tool.
/// </summary>
internal static class ConsoleApi
{
    private sealed record Page(string Path, string File, string Title, string Script, string Nav);

    private static readonly Page[] Pages =
    [
        new("/", "send.html", "Quick Send", "send.js", "send"),
        new("/leads", "leads.html", "Leads", "leads.js", "leads"),
        new("/messages", "messages.html", "Messages", "messages.js", "messages"),
        new("/batches/{batchId}", "batch.html", "Batch", "batch.js", "batches"),
        new("/lines", "lines.html", "Lines", "lines.js", "lines"),
    ];

    private const string PageSecurity =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public static IServiceCollection AddLineAgentConsole(this IServiceCollection services)
    {
        services.AddOptions<ConsoleOptions>().BindConfiguration(ConsoleOptions.Section)
            .Validate(o => o.SessionIdleTimeout > TimeSpan.Zero && o.SessionLifetime > TimeSpan.Zero, "Console:SessionIdleTimeout and Console:SessionLifetime must be positive durations.")
            .ValidateOnStart();
        services.AddSingleton<ConsoleSessions>();
        services.AddSingleton<ConsoleAssets>();
        return services;
    }

    public static IEndpointRouteBuilder MapConsole(this IEndpointRouteBuilder app)
    {
        foreach (var page in Pages)
            app.MapGet(page.Path, (HttpContext http, ConsoleSessions sessions, ConsoleAssets assets) => ServePage(http, page, sessions, assets))
                .ExcludeFromDescription();
        app.MapGet("/login", Login).ExcludeFromDescription();
        app.MapGet("/console/{*file}", Asset).ExcludeFromDescription();

        var g = app.MapGroup("/api/console").WithTags("Console");
        g.MapPost("/link", CreateLink).WithName("CreateConsoleLink");
        g.MapPost("/logout", Logout).WithName("EndConsoleSession");
        g.MapPost("/preview", Preview).WithName("PreviewTemplate");
        app.MapEventStream();
        return app;
    }

    /// <summary>403 for a cookie-authenticated change without the anti-forgery header (or from another origin).</summary>
    public static ProblemHttpResult Forged() => TypedResults.Problem(
        detail: $"A change through the console's session needs the {ConsoleSessions.CsrfHeader} header of that session, from the console's own pages. " +
                "Tools use 'Authorization: Bearer <token>' instead.",
        statusCode: 403, title: "Forbidden.", extensions: new Dictionary<string, object?> { ["code"] = "csrf_failed" });

    private static IResult ServePage(HttpContext http, Page page, ConsoleSessions sessions, ConsoleAssets assets)
    {
        if (sessions.Find(http) is not { } session)
            return NoSession(http, assets, "You are not signed in to this console.", StatusCodes.Status401Unauthorized);
        var nav = Pages.Where(p => p.Nav != "batches").ToDictionary(p => p.Nav, p => p.Nav == page.Nav ? "aria-current=\"page\"" : "");
        var html = assets.Text("layout.html")
            .Replace("{{main}}", assets.Text(page.File))
            .Replace("{{title}}", page.Title)
            .Replace("{{script}}", page.Script)
            .Replace("{{csrf}}", session.CsrfToken);
        foreach (var (key, attr) in nav)
            html = html.Replace($"{{{{current:{key}}}}}", attr);
        return Html(http, html, StatusCodes.Status200OK);
    }

    private static IResult NoSession(HttpContext http, ConsoleAssets assets, string reason, int status) =>
        Html(http, assets.Text("nosession.html").Replace("{{reason}}", reason), status);

    private static IResult Html(HttpContext http, string html, int status)
    {
        var h = http.Response.Headers;
        h.ContentSecurityPolicy = PageSecurity;
        h.CacheControl = "no-store";
        h.XContentTypeOptions = "nosniff";
        h.XFrameOptions = "DENY";
        h["Referrer-Policy"] = "no-referrer";
        return TypedResults.Content(html, "text/html; charset=utf-8", System.Text.Encoding.UTF8, status);
    }

    /// <summary>The one-time link: spends the code, sets the session cookie and lands on Quick Send; a second use fails.</summary>
    internal static IResult Login(HttpContext http, string? code, ConsoleSessions sessions, ConsoleAssets assets)
    {
        // Checked before the code is spent: a request under a rebound name must not use up the user's link.
        if (!ConsoleSessions.TrustedHost(http))
            return NoSession(http, assets, "Open the console at the address lineagent open gives (127.0.0.1 or localhost), not under another name.", StatusCodes.Status400BadRequest);
        var id = sessions.Redeem(code);
        if (id is null)
            return NoSession(http, assets, "This link was already used or has expired (a link works once, for a minute).", StatusCodes.Status400BadRequest);
        http.Response.Cookies.Append(ConsoleSessions.CookieName(http), id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = http.Request.IsHttps,
            Path = "/",
            IsEssential = true,
        });
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers["Referrer-Policy"] = "no-referrer";
        return TypedResults.Redirect("/");
    }

    internal static IResult Asset(HttpContext http, string? file, ConsoleAssets assets)
    {
        // /console/ names no file (a 404, not the framework's 400 about a missing parameter). The .html files are parts of
        // pages put together by ServePage (with its headers), never pages of their own.
        if (string.IsNullOrEmpty(file) || file.EndsWith(".html", StringComparison.OrdinalIgnoreCase) || assets.Find(file) is not { } asset)
            return TypedResults.NotFound();
        var h = http.Response.Headers;
        h.CacheControl = "no-cache";
        h.ETag = asset.ETag;
        h.XContentTypeOptions = "nosniff";
        // An asset opened on its own (icon.svg is a document a browser can show) gets the pages' policy too.
        h.ContentSecurityPolicy = PageSecurity;
        h.XFrameOptions = "DENY";
        if (http.Request.Headers.IfNoneMatch.ToString() == asset.ETag)
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        return TypedResults.Bytes(asset.Bytes, asset.ContentType);
    }

    /// <summary>For `lineagent open` and the menu bar: needs the bearer token itself, not a console session.</summary>
    internal static Results<Ok<ConsoleLink>, ProblemHttpResult> CreateLink(HttpContext http, ApiToken token, ConsoleSessions sessions)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || !token.Matches(header["Bearer ".Length..].Trim()))
            return TypedResults.Problem(detail: "A console link is made with the API token (lineagent open), not from a console session.",
                statusCode: 403, title: "Forbidden.", extensions: new Dictionary<string, object?> { ["code"] = "token_required" });
        var (code, expiresAt) = sessions.CreateLink();
        // /login answers only to a trusted host; under any other Host header the link names the address the request came in on.
        var host = ConsoleSessions.TrustedHost(http) || http.Connection.LocalIpAddress is not { } local
            ? http.Request.Host.ToString()
            : new System.Net.IPEndPoint(local.IsIPv4MappedToIPv6 ? local.MapToIPv4() : local, http.Connection.LocalPort).ToString();
        return TypedResults.Ok(new ConsoleLink($"{http.Request.Scheme}://{host}/login?code={Uri.EscapeDataString(code)}", expiresAt));
    }

    internal static NoContent Logout(HttpContext http, ConsoleSessions sessions)
    {
        sessions.End(http);
        http.Response.Cookies.Delete(ConsoleSessions.CookieName(http), new CookieOptions { Path = "/", HttpOnly = true, SameSite = SameSiteMode.Strict });
        return TypedResults.NoContent();
    }

    /// <summary>A bulk template rendered for a few leads, exactly as the bulk send will render it; nothing is stored.</summary>
    internal static async Task<Results<Ok<PreviewResponse>, ValidationProblem>> Preview(PreviewRequest body, LeadStore leads, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        LineAgent.Messages.MessageValidator.ValidateContent(body.Content, problems, required: true); // as /bulk: 1-10,000 characters
        if (body.LeadIds is null || body.LeadIds.Count is 0 or > 10)
            problems.Add(new("leadIds", "invalid_filter", "leadIds must list 1-10 leads."));
        else if (body.LeadIds.Any(string.IsNullOrWhiteSpace))
            problems.Add(new("leadIds", "invalid_lead", "leadIds must not contain empty ids."));
        // The same template checks as /bulk, so the preview never shows as fine what the send refuses.
        if (problems.Count == 0 && Templates.Problem(body.Content!, "content") is { } templateProblem)
            problems.Add(new("content", "invalid_template", templateProblem));
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var rows = await leads.GetManyAsync(body.LeadIds!.Distinct().ToList(), ct);
        var byId = rows.ToDictionary(r => r.Id);
        var template = Templates.Compile(body.Content!);
        var items = new List<PreviewItem>();
        foreach (var id in body.LeadIds!.Distinct())
        {
            if (!byId.TryGetValue(id, out var lead))
            {
                items.Add(new(id, null, null, null, null));
                continue;
            }
            var (text, missing) = template.Render(lead);
            items.Add(new(id, lead.FullName, lead.Phone ?? lead.Email, text, missing));
        }
        return TypedResults.Ok(new PreviewResponse(items, Templates.UnknownPlaceholders(body.Content!)));
    }
}

using Microsoft.AspNetCore.Mvc;

namespace LineAgent.Api;

/// <summary>
/// Query strings come from the network: a value with a NUL or another control character is refused before
/// any handler sees it (SQLite would read a NUL as the end of a string). Every such parameter is named.
/// </summary>
public sealed class QueryGuardMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        List<FieldProblem>? problems = null;
        foreach (var (key, values) in context.Request.Query)
        {
            if (HasControl(key) || values.Any(v => v is not null && HasControl(v)))
                (problems ??= []).Add(new(SafeName(key), "invalid_query", $"Query parameter '{SafeName(key)}' contains a control character."));
        }
        return problems is null ? next(context) : Problems.Validation(problems).ExecuteAsync(context);
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
}

using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace LineAgent.Api;

/// <summary>An error of the agent's own that maps to a problem response.</summary>
public sealed class AgentProblemException(int status, string code, string detail, IDictionary<string, object?>? extensions = null)
    : Exception(detail)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public IDictionary<string, object?>? Extensions { get; } = extensions;
}

public static class Problems
{
    private static readonly Dictionary<int, string> Titles = new()
    {
        [400] = "The request is not valid.",
        [401] = "Missing or wrong API token.",
        [404] = "Not found.",
        [409] = "The request conflicts with the current state.",
        [500] = "The message failed.", // not "could not be delivered": an unconfirmed one may have gone out (its error says so)
        [503] = "Service unavailable.",
    };

    public static ProblemHttpResult Of(int status, string code, string detail, IDictionary<string, object?>? extensions = null)
    {
        var ext = new Dictionary<string, object?>(extensions ?? new Dictionary<string, object?>()) { ["code"] = code };
        return TypedResults.Problem(detail: detail, statusCode: status, title: Titles.GetValueOrDefault(status, "Error"), extensions: ext);
    }

    public static ProblemHttpResult NotFound(string code, string detail) => Of(404, code, detail);

    public static ProblemHttpResult Conflict(string code, string detail, IDictionary<string, object?>? extensions = null) =>
        Of(409, code, detail, extensions);

    /// <summary>400 naming every bad field: `errors` (field → messages) and `problems` (field, code, detail).</summary>
    public static ValidationProblem Validation(IReadOnlyList<FieldProblem> problems)
    {
        var errors = problems.GroupBy(p => p.Field).ToDictionary(g => g.Key, g => g.Select(p => p.Detail).ToArray());
        var codes = problems.Select(p => p.Code).Distinct().ToList();
        return TypedResults.ValidationProblem(
            errors,
            detail: string.Join(" ", problems.Select(p => p.Detail)),
            title: Titles[400],
            extensions: new Dictionary<string, object?>
            {
                ["code"] = codes.Count == 1 ? codes[0] : "validation_failed",
                ["problems"] = problems,
            });
    }
}

/// <summary>Maps the agent's own errors and unreadable requests to problem responses; anything else is a 500 without internals.</summary>
public sealed class AgentExceptionHandler(IProblemDetailsService problems, ILogger<AgentExceptionHandler> log) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        ProblemDetails details;
        switch (exception)
        {
            case AgentProblemException p:
                details = new ProblemDetails { Status = p.Status, Title = "Error", Detail = p.Message };
                details.Extensions["code"] = p.Code;
                foreach (var (k, v) in p.Extensions ?? new Dictionary<string, object?>())
                    details.Extensions[k] = v;
                break;
            case var storage when Storage.StorageHealth.FaultOf(storage) is { } fault:
                // Nothing was stored: the disk is full (or the data dir read-only). Try again later; the agent recovers by itself.
                details = new ProblemDetails
                {
                    Status = 503, Title = "Storage unavailable.",
                    Detail = fault switch
                    {
                        Storage.StorageState.Full => "The agent's disk is full: nothing was stored. Free some space; the agent goes on by itself.",
                        Storage.StorageState.ReadOnly => "The agent's data directory cannot be written: nothing was stored. Check its permissions.",
                        _ when storage is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 11 or 26 }
                               || storage.InnerException is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 11 or 26 } =>
                            $"The agent's database is damaged ({storage.Message}): nothing was stored. Stop the agent and run `lineagent restore` (it lists the backups).",
                        _ => $"The agent's database cannot be written ({storage.Message}): nothing was stored. Check the disk.",
                    },
                };
                details.Extensions["code"] = new Storage.StorageState(fault, null, null).Code ?? "storage_error";
                context.Response.Headers.RetryAfter = "30";
                log.LogWarning("{Method} {Path} refused: storage {Fault}", context.Request.Method, context.Request.Path, fault);
                break;
            case BadHttpRequestException b when QueryBindingProblem(context, b) is { } query:
                // A typed query argument (int? limit) that does not parse: name the parameter, not the .NET type.
                details = new ProblemDetails { Status = 400, Title = "The request is not valid.", Detail = query.Detail };
                details.Extensions["code"] = query.Code;
                details.Extensions["problems"] = new[] { query };
                details.Extensions["errors"] = new Dictionary<string, string[]> { [query.Field] = [query.Detail] };
                break;
            case BadHttpRequestException b:
                details = new ProblemDetails { Status = 400, Title = "The request is not valid.", Detail = Unwrap(b) };
                details.Extensions["code"] = "invalid_body";
                break;
            default:
                log.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
                details = new ProblemDetails { Status = 500, Title = "Internal error.", Detail = "The agent hit an unexpected error; see its log." };
                details.Extensions["code"] = "internal_error";
                break;
        }
        context.Response.StatusCode = details.Status ?? 500;
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = details, Exception = exception });
    }

    /// <summary>The framework says `Failed to bind parameter "Nullable&lt;int&gt; limit" from "abc".`; the client needs the parameter and what it takes.</summary>
    internal static FieldProblem? QueryBindingProblem(HttpContext context, BadHttpRequestException b)
    {
        var match = System.Text.RegularExpressions.Regex.Match(b.Message, "^Failed to bind parameter \"(?<type>.+) (?<name>[^ \"]+)\" from \"(?<value>.*)\"\\.$");
        if (!match.Success || !context.Request.Query.ContainsKey(match.Groups["name"].Value))
            return null;
        var name = match.Groups["name"].Value;
        var value = match.Groups["value"].Value;
        if (value.Length > 100) value = value[..100] + "...";
        var parameter = context.GetEndpoint()?.Metadata.GetMetadata<System.Reflection.MethodInfo>()?.GetParameters()
            .FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
        var type = parameter is null ? null : Nullable.GetUnderlyingType(parameter.ParameterType) ?? parameter.ParameterType;
        var expected = type switch
        {
            _ when type == typeof(int) || type == typeof(long) || type == typeof(short) => "a whole number",
            _ when type == typeof(double) || type == typeof(decimal) || type == typeof(float) => "a number",
            _ when type == typeof(bool) => "true or false",
            _ when type == typeof(DateTimeOffset) || type == typeof(DateTime) => "an ISO 8601 time",
            _ => "a valid value",
        };
        return new FieldProblem(name, "invalid_query", $"Query parameter '{name}' must be {expected}; got '{value}'.");
    }

    private static string Unwrap(BadHttpRequestException b)
    {
        // The JSON reader's message names the field (e.g. "Path: $.content").
        var inner = b.InnerException?.Message;
        return inner is null ? b.Message : $"{b.Message} {inner}";
    }
}

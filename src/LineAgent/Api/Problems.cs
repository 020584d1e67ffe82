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
        [413] = "The request body is too large.",
        [415] = "Unsupported Media Type",
        [500] = "The message failed.", // not "could not be delivered": an unconfirmed one may have gone out (its error says so)
        [503] = "Service unavailable.",
    };

    public static ProblemHttpResult Of(int status, string code, string detail, IDictionary<string, object?>? extensions = null)
    {
        var ext = new Dictionary<string, object?>(extensions ?? new Dictionary<string, object?>()) { ["code"] = code };
        return TypedResults.Problem(detail: detail, statusCode: status, title: Titles.GetValueOrDefault(status, "Error"), extensions: ext);
    }

    /// <summary>Client input repeated in a problem's sentence, cut so a huge value never makes a huge answer.</summary>
    public static string Echo(string s, int max = 100) => s.Length > max ? s[..max] + "..." : s;

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
public sealed class AgentExceptionHandler(IProblemDetailsService problems, ILogger<AgentExceptionHandler> log,
    Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json) : IExceptionHandler
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
                // (A read stores nothing anyway: it says it could not be answered.)
                var read = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
                var outcome = read ? "this could not be read" : "nothing was stored";
                details = new ProblemDetails
                {
                    Status = 503, Title = "Storage unavailable.",
                    Detail = fault switch
                    {
                        Storage.StorageState.Full => $"The agent's disk is full: {outcome}. Free some space; the agent goes on by itself.",
                        Storage.StorageState.ReadOnly => $"The agent's data directory cannot be written: {outcome}. Check its permissions.",
                        _ when Storage.DatabasePresence.IsGone(storage) =>
                            $"The agent's database was deleted (or its data directory) while it ran: {outcome}. The agent stops and starts again on its data directory as it is now; try again in a moment.",
                        _ when storage is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 11 or 26 }
                               || storage.InnerException is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 11 or 26 } =>
                            $"The agent's database is damaged ({storage.Message}): {outcome}. Stop the agent and run `lineagent restore` (it lists the backups).",
                        _ => $"The agent's database cannot be {(read ? "read" : "written")} ({storage.Message}): {outcome}. Check the disk.",
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
            case BadHttpRequestException { StatusCode: 413 }:
                details = new ProblemDetails
                {
                    Status = 413, Title = "The request body is too large.",
                    Detail = $"The body is larger than this route takes{(MaxBodyOf(context) is { } max ? $" ({max:N0} bytes)" : "")}; nothing was stored.",
                };
                details.Extensions["code"] = "payload_too_large";
                break;
            case BadHttpRequestException { StatusCode: 415 }:
                // A JSON route read without a JSON Content-Type (routing let it through: it had none).
                details = new ProblemDetails { Status = 415, Title = "Unsupported Media Type" };
                break;
            case BadHttpRequestException b:
                var body = BodyProblem(b);
                // System.Text.Json stops at the first problem; a body kept by JsonBodyBufferMiddleware is read again for all of them.
                var all = b.InnerException is System.Text.Json.JsonException && body.Code != "invalid_json"
                    ? await BodyShapeProblems.FindAsync(context, json.Value.SerializerOptions, ct)
                    : null;
                if (all is { Count: > 0 })
                    all = await BodyShapeProblems.WithFieldProblemsAsync(context, json.Value.SerializerOptions, all, ct);
                if (all is not { Count: > 0 })
                    all = [body];
                details = new ProblemDetails { Status = 400, Title = "The request is not valid.", Detail = string.Join(" ", all.Select(p => p.Detail)) };
                details.Extensions["code"] = "invalid_body";
                details.Extensions["problems"] = all;
                details.Extensions["errors"] = all.GroupBy(p => p.Field).ToDictionary(g => g.Key, g => g.Select(p => p.Detail).ToArray());
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
        var parameter = FailedEndpoint(context)?.Metadata.GetMetadata<System.Reflection.MethodInfo>()?.GetParameters()
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

    /// <summary>The endpoint that threw: the exception handler has cleared the request's, and its feature keeps it.</summary>
    internal static Endpoint? FailedEndpoint(HttpContext context) =>
        context.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.Endpoint ?? context.GetEndpoint();

    private static long? MaxBodyOf(HttpContext context) =>
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;

    /// <summary>
    /// What is wrong with an unreadable JSON body, in the client's terms: the field (its JSON path) and what it must be,
    /// never a .NET type name. System.Text.Json stops at the first problem, so this names one; <see cref="BodyShapeProblems"/>
    /// then reads a kept body again for the others.
    /// </summary>
    internal static FieldProblem BodyProblem(BadHttpRequestException b)
    {
        if (b.InnerException is not System.Text.Json.JsonException json)
            return b.Message.Contains("no body was provided", StringComparison.Ordinal) || b.Message.Contains("was not provided from body", StringComparison.Ordinal)
                ? new FieldProblem("body", "missing_body", "This request needs a JSON body (Content-Type: application/json).")
                : new FieldProblem("body", "invalid_body", b.Message);
        return JsonProblem(json, null);
    }

    /// <summary>As <see cref="BodyProblem"/> for an error of the value at <paramref name="prefix"/> (its path in the body; null: the body).</summary>
    internal static FieldProblem JsonProblem(System.Text.Json.JsonException json, string? prefix)
    {
        var field = Within(prefix, FieldOf(json.Path));
        var message = json.Message;
        var unmapped = System.Text.RegularExpressions.Regex.Match(message,
            "^The JSON property '(?<name>.*)' could not be mapped to any \\.NET member contained in type '(?<type>[^']+)'", System.Text.RegularExpressions.RegexOptions.Singleline);
        if (unmapped.Success)
        {
            var name = Problems.Echo(unmapped.Groups["name"].Value);
            field = Problems.Echo(field);
            var known = KnownFields(unmapped.Groups["type"].Value);
            // The path names the unknown property itself ($.followUps[0].afer), or its parent on older readers.
            var path = field == "body" ? name : field == name || field.EndsWith("." + name, StringComparison.Ordinal) ? field : $"{field}.{name}";
            var hint = Closest(name, known) is { } near ? $" Did you mean '{near}'?" : known.Count > 0 ? $" Known fields: {string.Join(", ", known)}." : "";
            return new FieldProblem(path, "unknown_field", $"Unknown field '{path}': nothing was stored.{hint}");
        }
        if (message.StartsWith("Duplicate property", StringComparison.Ordinal) || message.Contains("duplicate", StringComparison.OrdinalIgnoreCase))
            return new FieldProblem(field, "duplicate_field", $"'{field}' is given more than once; give each field once.");
        // "Cannot read invalid UTF-16 JSON text as string. Invalid surrogate value", "Cannot transcode invalid UTF-8 JSON text".
        if (json.InnerException is InvalidOperationException { Message: var text }
                && (text.Contains("UTF-16", StringComparison.Ordinal) || text.Contains("UTF-8", StringComparison.Ordinal) || text.Contains("transcode", StringComparison.Ordinal))
            || json.InnerException is System.Text.DecoderFallbackException)
            return new FieldProblem(field, "invalid_text", $"'{field}' is not valid Unicode text (invalid UTF-8 or a lone surrogate).");
        var converted = System.Text.RegularExpressions.Regex.Match(message, "^The JSON value could not be converted to (?<type>[^.]+(\\.[^. ]+)*)\\. Path:", System.Text.RegularExpressions.RegexOptions.Singleline);
        if (converted.Success)
        {
            // A record bound through its constructor is named instead of the property's type: look the property up.
            var type = converted.Groups["type"].Value;
            var last = System.Text.RegularExpressions.Regex.Replace(field.Split('.')[^1], @"\[\d+\]$", "");
            if (typeof(Problems).Assembly.GetType(type) is { } owner
                && owner.GetProperty(last, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase) is { } property)
                type = property.PropertyType.ToString();
            return new FieldProblem(field, "invalid_type", $"'{field}' must be {Expected(type)}.");
        }
        var position = json.LineNumber is { } line && json.BytePositionInLine is { } at ? $" (line {line + 1}, position {at + 1})" : "";
        var reason = message.Split(" Path:")[0].Split(" LineNumber:")[0].Replace(" Change the reader options.", "").TrimEnd('.', ' ');
        return new FieldProblem("body", "invalid_json", $"The body is not valid JSON{position}: {reason}.");
    }

    /// <summary>A path inside the value at <paramref name="prefix"/>: "followUps[0]" + "after" → "followUps[0].after".</summary>
    internal static string Within(string? prefix, string field) =>
        string.IsNullOrEmpty(prefix) ? field
        : field == "body" ? prefix
        : field.StartsWith('[') ? prefix + field
        : $"{prefix}.{field}";

    /// <summary>"$.followUps[0].after" → "followUps[0].after", "$['sheduled at']" → "sheduled at"; the whole body → "body".</summary>
    private static string FieldOf(string? path) => path is null or "$" || !path.StartsWith('$')
        ? "body"
        : Problems.Echo(path[1..].Replace("['", ".", StringComparison.Ordinal).Replace("']", "", StringComparison.Ordinal).TrimStart('.'));


    private static string Expected(string type) => System.Text.RegularExpressions.Regex.Match(type, @"^System\.Nullable`1\[(?<inner>.+)\]$") is { Success: true } nullable
        ? Expected(nullable.Groups["inner"].Value)
        : type switch
    {
        "System.String" => "text (a JSON string)",
        "System.Int32" or "System.Int64" or "System.Int16" => "a whole number",
        "System.Double" or "System.Decimal" or "System.Single" => "a number",
        "System.Boolean" => "true or false",
        "System.DateTimeOffset" or "System.DateTime" => "an ISO 8601 time (a JSON string)",
        _ when type.StartsWith("System.Collections.Generic.List", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal)
            || type.StartsWith("System.Collections.Generic.IReadOnlyList", StringComparison.Ordinal) => "an array",
        _ => "an object",
    };

    /// <summary>The camelCase JSON names of a request type, for "did you mean".</summary>
    private static IReadOnlyList<string> KnownFields(string typeName) =>
        typeof(Problems).Assembly.GetType(typeName) is { } type
            ? type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
                .Where(p => p.CanWrite || p.GetSetMethod(nonPublic: true) is not null || type.GetConstructors().Any(c => c.GetParameters().Any(a => a.Name == p.Name)))
                .Select(p => System.Text.Json.JsonNamingPolicy.CamelCase.ConvertName(p.Name)).ToList()
            : [];

    internal static string? Closest(string name, IReadOnlyList<string> known)
    {
        var lower = name.ToLowerInvariant().Replace("_", "").Replace("-", "");
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var k in known)
        {
            var d = Distance(lower, k.ToLowerInvariant());
            if (d < bestDistance) (best, bestDistance) = (k, d);
        }
        return bestDistance <= Math.Max(2, name.Length / 4) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        if (a.Length > 100 || b.Length > 100) return int.MaxValue;
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) prev[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (var j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}

using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace LineAgent.Api;

/// <summary>
/// Keeps a JSON request body readable a second time (up to <see cref="MaxBuffered"/> bytes, in memory), so that when it
/// cannot be bound, <see cref="BodyShapeProblems"/> can name every problem in it rather than the first the reader met.
/// </summary>
public sealed class JsonBodyBufferMiddleware(RequestDelegate next)
{
    public const int MaxBuffered = 1 << 20;

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is > 0 and <= MaxBuffered
            && (HttpMethods.IsPost(request.Method) || HttpMethods.IsPatch(request.Method) || HttpMethods.IsPut(request.Method))
            && request.HasJsonContentType())
            // Kept in a buffer of the body's own length (Kestrel holds the body to its Content-Length): a threshold of 1 MB
            // rented 1 MB for every request.
            request.EnableBuffering(bufferThreshold: (int)request.ContentLength.Value, bufferLimit: request.ContentLength.Value);
        return next(context);
    }
}

/// <summary>
/// Every problem of shape in a JSON body the route could not bind: each unknown or repeated field and each value of
/// the wrong type, at any depth (System.Text.Json stops at the first: `{"content":5,"recipientPhone":12025550123}` named
/// only `content`). Read from the body kept by <see cref="JsonBodyBufferMiddleware"/>, against the route's body type
/// as the HTTP JSON options see it (the same names, the same closed request types).
/// </summary>
internal static class BodyShapeProblems
{
    /// <summary>
    /// At most this many are named, and the walk stops there: a 1 MB body of 500,000 wrong array items answered 113 MB
    /// of problems after 7 s (review).
    /// </summary>
    public const int MaxProblems = 50;

    /// <summary>The problems; null when the body was not kept, is not JSON, or the route has no body type.</summary>
    public static async Task<List<FieldProblem>?> FindAsync(HttpContext context, JsonSerializerOptions options, CancellationToken ct)
    {
        var body = context.Request.Body;
        if (!body.CanSeek || BodyType(AgentExceptionHandler.FailedEndpoint(context)) is not { } type)
            return null;
        try
        {
            using var document = await ReadAgainAsync(body, options, ct);
            var problems = new List<FieldProblem>();
            Walk(document.RootElement, type, null, options, problems);
            if (problems.Count > MaxProblems)
            {
                problems.RemoveRange(MaxProblems, problems.Count - MaxProblems);
                problems.Add(new FieldProblem("body", "more_problems", $"The body has more problems than these {MaxProblems}; fix these and send it again."));
            }
            return problems;
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException or NotSupportedException)
        {
            return null; // not JSON after all, or unreadable: the reader's first problem stands
        }
    }

    /// <summary>
    /// <paramref name="shape"/>, and then the route's field problems (<see cref="IFieldValidation"/>) of the fields that are
    /// well formed: each top-level field with a problem of its own (unknown, repeated, or wrong inside) is left out, the rest
    /// bound and checked as a request without it would be, and a problem about a field left out is not named twice.
    /// </summary>
    public static async Task<List<FieldProblem>> WithFieldProblemsAsync(HttpContext context, JsonSerializerOptions options, List<FieldProblem> shape,
        CancellationToken ct)
    {
        var body = context.Request.Body;
        if (AgentExceptionHandler.FailedEndpoint(context)?.Metadata.GetMetadata<IFieldValidation>() is not { } validation
            || shape.Count >= MaxProblems || !body.CanSeek)
            return shape;
        try
        {
            using var document = await ReadAgainAsync(body, options, ct);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return shape;
            var info = options.GetTypeInfo(validation.BodyType);
            var comparison = options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            var comparer = options.PropertyNameCaseInsensitive ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
            var times = document.RootElement.EnumerateObject().GroupBy(p => p.Name, comparer).ToDictionary(g => g.Key, g => g.Count(), comparer);
            var kept = new System.Text.Json.Nodes.JsonObject();
            var left = new HashSet<string>(comparer);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                var member = info.Properties.FirstOrDefault(p => string.Equals(p.Name, property.Name, comparison));
                var inner = new List<FieldProblem>();
                if (member is not null && times[property.Name] == 1)
                    Walk(property.Value, member.PropertyType, member.Name, options, inner);
                if (member is null || times[property.Name] > 1)
                {
                    left.Add(member?.Name ?? property.Name);
                    continue;
                }
                if (inner.Count > 0)
                {
                    // A list or object with a problem inside: the rest of it is still checked (followUps[1]'s bad `after` went
                    // unsaid behind an unknown field in followUps[0]: probe). Left out whole only when it cannot stand
                    // without the bad parts (a wrong item of a list would renumber the others).
                    if (Clean(property.Value, member.PropertyType, options) is not (true, var cleaned))
                    {
                        left.Add(member.Name);
                        continue;
                    }
                    kept[member.Name] = cleaned;
                    continue;
                }
                kept[member.Name] = System.Text.Json.Nodes.JsonNode.Parse(property.Value.GetRawText());
            }
            if (kept.Deserialize(validation.BodyType, options) is not { } bound)
                return shape;
            var named = shape.Select(p => p.Field).ToHashSet(comparer);
            var more = (await validation.ValidateAsync(bound, context, ct))
                .Where(p => !left.Contains(TopField(p.Field)) && !named.Contains(p.Field)
                    // a part of a value already named, or a value a named part of was dropped from (recipientWindow without its bad `from`)
                    && !named.Any(n => Within(p.Field, n, comparison) || Within(n, p.Field, comparison))
                    && !(validation.DependsOn.TryGetValue(p.Code, out var on) && on.Any(left.Contains)));
            return [.. shape, .. more];
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Whatever it was (a database that refuses the lead lookup): what the shape walk found stands, rather than an
            // exception out of the exception handler, which left an empty 400 (review).
            context.RequestServices.GetService<ILoggerFactory>()?.CreateLogger(typeof(BodyShapeProblems))
                .LogWarning(e, "The field checks of a body with problems of shape failed; only those are named");
            return shape;
        }
    }

    /// <summary>The kept body from its start, read as the HTTP JSON options read it.</summary>
    private static Task<JsonDocument> ReadAgainAsync(Stream body, JsonSerializerOptions options, CancellationToken ct)
    {
        body.Position = 0;
        return JsonDocument.ParseAsync(body, new JsonDocumentOptions
        {
            AllowTrailingCommas = options.AllowTrailingCommas, CommentHandling = options.ReadCommentHandling,
            MaxDepth = options.MaxDepth == 0 ? 64 : options.MaxDepth,
        }, ct);
    }

    /// <summary>`followUps[0].after` is within `followUps[0]` (a part of a value already named is not named again).</summary>
    private static bool Within(string field, string outer, StringComparison comparison) =>
        field.Length > outer.Length && field.StartsWith(outer, comparison) && field[outer.Length] is '.' or '[';

    /// <summary>
    /// <paramref name="element"/> without what <see cref="Walk"/> names inside it: unknown and repeated fields and wrong
    /// values of an object dropped. Not ok when the value itself is wrong, or an item of a list is, or an object does not
    /// bind without what was dropped (a required field).
    /// </summary>
    private static (bool Ok, System.Text.Json.Nodes.JsonNode? Node) Clean(JsonElement element, Type type, JsonSerializerOptions options)
    {
        var info = options.GetTypeInfo(type);
        if (info.Kind == JsonTypeInfoKind.Object && element.ValueKind == JsonValueKind.Object)
        {
            var comparer = options.PropertyNameCaseInsensitive ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
            var comparison = options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            var times = element.EnumerateObject().GroupBy(p => p.Name, comparer).ToDictionary(g => g.Key, g => g.Count(), comparer);
            var cleaned = new System.Text.Json.Nodes.JsonObject();
            foreach (var property in element.EnumerateObject())
                if (times[property.Name] == 1 && info.Properties.FirstOrDefault(p => string.Equals(p.Name, property.Name, comparison)) is { } member
                    && Clean(property.Value, member.PropertyType, options) is (true, var node))
                    cleaned[member.Name] = node;
            try
            {
                cleaned.Deserialize(type, options);
                return (true, cleaned);
            }
            catch (JsonException)
            {
                return (false, null);
            }
        }
        if (info.Kind == JsonTypeInfoKind.Enumerable && info.ElementType is { } itemType && element.ValueKind == JsonValueKind.Array)
        {
            var list = new System.Text.Json.Nodes.JsonArray();
            foreach (var value in element.EnumerateArray())
            {
                if (Clean(value, itemType, options) is not (true, var node))
                    return (false, null);
                list.Add(node);
            }
            return (true, list);
        }
        try
        {
            element.Deserialize(type, options);
            return (true, System.Text.Json.Nodes.JsonNode.Parse(element.GetRawText()));
        }
        catch (JsonException)
        {
            return (false, null);
        }
    }

    /// <summary>`followUps[0].after` → `followUps`.</summary>
    private static string TopField(string field) => field.IndexOfAny(['.', '[']) is var i and > 0 ? field[..i] : field;

    /// <summary>The route's JSON body type: its handler's request-body argument (every route's is one, ApiRequestTypesTests).</summary>
    private static Type? BodyType(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<System.Reflection.MethodInfo>()?.GetParameters().Select(p => p.ParameterType).FirstOrDefault(AgentJson.IsRequestBody)
        ?? endpoint?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>()?.RequestType;

    private static void Walk(JsonElement element, Type type, string? path, JsonSerializerOptions options, List<FieldProblem> problems)
    {
        if (problems.Count > MaxProblems)
            return; // one more than the cap: FindAsync says there are more
        var before = problems.Count;
        var info = options.GetTypeInfo(type);
        if (info.Kind == JsonTypeInfoKind.Object && element.ValueKind == JsonValueKind.Object)
        {
            var comparer = options.PropertyNameCaseInsensitive ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
            var seen = new HashSet<string>(comparer);
            var repeated = new HashSet<string>(comparer);
            foreach (var property in element.EnumerateObject())
            {
                if (problems.Count > MaxProblems)
                    return;
                var at = Problems.Echo(string.IsNullOrEmpty(path) ? property.Name : $"{path}.{property.Name}");
                if (!seen.Add(property.Name))
                {
                    if (repeated.Add(property.Name))
                        problems.Add(new FieldProblem(at, "duplicate_field", $"'{at}' is given more than once; give each field once."));
                    continue;
                }
                var member = info.Properties.FirstOrDefault(p => string.Equals(p.Name, property.Name,
                    options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal));
                if (member is null)
                {
                    if (info.UnmappedMemberHandling == System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow)
                    {
                        var known = info.Properties.Select(p => p.Name).ToList();
                        var hint = AgentExceptionHandler.Closest(property.Name, known) is { } near ? $" Did you mean '{near}'?"
                            : known.Count > 0 ? $" Known fields: {string.Join(", ", known)}." : "";
                        problems.Add(new FieldProblem(at, "unknown_field", $"Unknown field '{at}': nothing was stored.{hint}"));
                    }
                    continue;
                }
                Walk(property.Value, member.PropertyType, at, options, problems);
            }
        }
        else if (info.Kind == JsonTypeInfoKind.Enumerable && info.ElementType is { } item && element.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var value in element.EnumerateArray())
            {
                if (problems.Count > MaxProblems)
                    return;
                Walk(value, item, $"{path}[{i++}]", options, problems);
            }
        }
        if (problems.Count > before)
            return;
        // Nothing wrong inside (or a single value): the value as a whole, for what only it can say (a wrong type, a
        // required field missing).
        try
        {
            element.Deserialize(type, options);
        }
        catch (JsonException e)
        {
            problems.Add(AgentExceptionHandler.JsonProblem(e, path));
        }
    }
}

using System.Text;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Data.Sqlite;

namespace LineAgent.Api;

/// <summary>The request's Idempotency-Key and the hash of what it asked for, for the handler to store with its work.</summary>
public sealed record IdempotencyRequest(string Key, string Hash);

/// <summary>
/// Idempotency-Key on the POSTs that send (<c>.AcceptsIdempotencyKey()</c>), in one place: a malformed key is a 400;
/// a key seen before with the same request replays the first answer (or, while the first request still waits for
/// its channel, the message's state now) and never runs the handler; with another request it is a 409. Otherwise
/// the handler runs with an <see cref="IdempotencyRequest"/> feature and stores the key in the transaction that
/// stores its work; when a concurrent request with the same key won that race, its answer is replayed.
/// </summary>
public sealed class IdempotencyFilter : IEndpointFilter
{
    private const string Header = IdempotencyStore.Header;
    private const int MaxKeyLength = IdempotencyStore.MaxKeyLength;

    /// <summary>The filter holds no state: one instance serves every route (the generic AddEndpointFilter would build it through
    /// ActivatorUtilities, which loads and compiles expression trees at start).</summary>
    public static readonly IdempotencyFilter Instance = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (!http.Request.Headers.TryGetValue(Header, out var values))
            return await next(context);
        // Two keys arrive joined ("a, b"), as several header lines or as one line that a client or proxy combined: neither
        // would be the key the client meant. A comma is therefore not part of a key.
        if (values.Count > 1 || values.ToString().Contains(','))
            return Problems.Validation([new FieldProblem(Header, "invalid_idempotency_key", "Give one Idempotency-Key, without commas (several keys are joined by them).")]);
        var key = values.ToString().Trim();
        if (key.Length is 0 or > MaxKeyLength || key.Any(char.IsControl))
            return Problems.Validation([new FieldProblem(Header, "invalid_idempotency_key", $"Idempotency-Key must be 1-{MaxKeyLength} printable characters.")]);

        var hash = IdempotencyStore.Hash(RequestIdentity(http), RequestBody(context) ?? http.Request.RouteValues);
        var store = http.RequestServices.GetRequiredService<IdempotencyStore>();
        if (await ReplayAsync(http, store, key, hash) is { } replay)
            return replay;

        http.Features.Set(new IdempotencyRequest(key, hash));
        try
        {
            return await next(context);
        }
        catch (SqliteException e) when (IdempotencyStore.IsUniqueViolation(e))
        {
            // The same key was stored by a concurrent request a moment ago: answer as it did.
            return await ReplayAsync(http, store, key, hash) ?? throw new InvalidOperationException("idempotency key vanished");
        }
    }

    /// <summary>"POST /api/messages/{id}/retry": the route's pattern; the values are in the hashed request.</summary>
    private static string RequestIdentity(HttpContext http) =>
        $"{http.Request.Method} {(http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? http.Request.Path.Value}";

    /// <summary>The bound body (the type the endpoint accepts), as the handler received it.</summary>
    private static object? RequestBody(EndpointFilterInvocationContext context)
    {
        var accepts = context.HttpContext.GetEndpoint()?.Metadata.GetMetadata<IAcceptsMetadata>();
        return accepts?.RequestType is { } type ? context.Arguments.FirstOrDefault(a => a is not null && type.IsInstanceOfType(a)) : null;
    }

    private static async Task<IResult?> ReplayAsync(HttpContext http, IdempotencyStore store, string key, string hash)
    {
        var ct = http.RequestAborted;
        var existing = await store.FindAsync(key, ct);
        if (existing is null)
            return null;
        if (existing.RequestHash != hash)
            return Problems.Conflict("idempotency_key_reused",
                "This Idempotency-Key was used with a different request; use a new key for a new request.");
        if (existing.ResponseStatus is { } status && existing.ResponseBody is { } stored)
            return TypedResults.Content(stored, status >= 400 ? "application/problem+json" : "application/json", Encoding.UTF8, status);
        if (existing.MessageId is not { } messageId)
            return Problems.Conflict("idempotency_key_reused",
                "This Idempotency-Key was used with a different request; use a new key for a new request.");
        // The first request is still waiting for its channel: answer from the message's current state.
        var answer = await http.RequestServices.GetRequiredService<SendResponder>().AwaitAsync(messageId, ct);
        return TypedResults.Content(answer.SerializeBody(), answer.ContentType, Encoding.UTF8, answer.Status);
    }
}

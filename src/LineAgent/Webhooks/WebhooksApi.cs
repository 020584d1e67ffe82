using System.Text.Json;
using LineAgent.Api;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.Webhooks;

internal static class WebhooksApi
{
    public static IEndpointRouteBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/webhooks").WithTags("Webhooks");
        g.MapPost("/", Create).WithName("CreateWebhook").WithSummary("Subscribe to events")
            .WithMetadata(new FieldValidation<WebhookRequest>(async (body, http, ct) =>
                (IReadOnlyList<FieldProblem>)await ProblemsAsync(body, http.RequestServices.GetRequiredService<WebhookTargetGuard>(), ct)))
            .WithDescription("Creates a subscription for `url` (checked against the SSRF guard). The answer shows the signing `secret` once.");
        g.MapGet("/", List).WithName("ListWebhooks").WithQueryParameters(OpenApiMetadata.Limit(), OpenApiMetadata.Cursor)
            .WithSummary("List subscriptions").WithDescription("Subscriptions without their secrets, newest first, one page at a time (`limit`, `cursor`).");
        g.MapGet("/{id}", Get).WithName("GetWebhook").WithSummary("Get a subscription").WithDescription("One subscription, without its secret.");
        g.MapDelete("/{id}", Delete).WithName("DeleteWebhook").WithSummary("Delete a subscription")
            .WithDescription("Deletes the subscription; nothing more is delivered to it.");
        g.MapGet("/{id}/deliveries", Deliveries).WithName("ListWebhookDeliveries")
            .WithQueryParameters(OpenApiMetadata.Limit(), OpenApiMetadata.Cursor)
            .WithSummary("List a subscription's deliveries")
            .WithDescription("The delivery log, newest first, one page at a time (`limit`, `cursor`): each event's status, attempts and the receiver's last answer.");
        return app;
    }

    /// <summary>Every problem of the body (also run on the well-formed fields of a body with a field of the wrong type).</summary>
    private static async Task<List<FieldProblem>> ProblemsAsync(WebhookRequest body, WebhookTargetGuard guard, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        // SSRF guard: scheme, credentials, host spelling, and every address the host resolves to now (checked again per connection).
        if (await guard.CreationProblemAsync(body.Url, ct) is { } urlProblem)
            problems.Add(new("url", "invalid_webhook_url", urlProblem));
        var unknown = (body.Events ?? []).Where(e => e is null || !WebhookEvents.All.Contains(e)).ToList();
        if (unknown.Count > 0)
            problems.Add(new("events", "invalid_events",
                $"Unknown events {string.Join(", ", unknown.Select(e => e is null ? "null" : $"'{Problems.Echo(e)}'"))}; use {string.Join(", ", WebhookEvents.All)} (none = all)."));
        if (body.Secret is not null && !WebhookSignature.TryKey(body.Secret, out _))
            problems.Add(new("secret", "invalid_secret", "secret must be whsec_ followed by base64 of at least 16 bytes (or leave it out to get one)."));
        return problems;
    }

    /// <summary>The answer shows the secret once; later reads do not.</summary>
    internal static async Task<Results<Created<WebhookDto>, ValidationProblem>> Create(
        WebhookRequest body, WebhookStore store, WebhookOutbox outbox, WebhookTargetGuard guard, TimeProvider time, CancellationToken ct)
    {
        var problems = await ProblemsAsync(body, guard, ct);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        // The URL is stored escaped as sent (AbsoluteUri): ToString() would turn %20 back into a space.
        var row = new WebhookRow
        {
            Id = Ids.New("wh", time.GetUtcNow()), Url = new Uri(body.Url!.Trim()).AbsoluteUri, Events = JsonSerializer.Serialize((body.Events ?? []).Distinct().ToArray()),
            Secret = body.Secret ?? WebhookSignature.NewSecret(), CreatedAt = Time.ToMs(time.GetUtcNow()),
        };
        await store.AddAsync(row, ct);
        await outbox.ReloadAsync(ct);
        return TypedResults.Created($"/api/webhooks/{row.Id}", WebhookDto.From(row, withSecret: true));
    }

    /// <summary>Newest first, paged like every list of the API: <c>{ items, nextCursor }</c>.</summary>
    internal static async Task<Results<Ok<WebhookPage>, ValidationProblem>> List(
        string? limit, string? cursor, HttpRequest request, WebhookStore store, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        var (take, before) = Paging(request, limit, cursor, problems);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var rows = (await store.PageAsync(before, take + 1, ct)).ToList();
        var more = rows.Count > take;
        if (more) rows.RemoveAt(rows.Count - 1);
        return TypedResults.Ok(new WebhookPage(rows.Select(r => WebhookDto.From(r, withSecret: false)).ToList(), more ? Cursor.Encode(rows[^1].Seq) : null));
    }

    /// <summary>The page size and position asked for; what is refused is added to <paramref name="problems"/>.</summary>
    private static (int Take, long? Before) Paging(HttpRequest request, string? limit, string? cursor, List<FieldProblem> problems)
    {
        QueryValues.Unknown(request.Query.Keys, ["limit", "cursor"], problems);
        return (QueryValues.Limit(limit, problems), QueryValues.Before(cursor, problems));
    }

    internal static async Task<Results<Ok<WebhookDto>, ProblemHttpResult>> Get(string id, WebhookStore store, CancellationToken ct) =>
        await store.GetAsync(id, ct) is { } row ? TypedResults.Ok(WebhookDto.From(row, withSecret: false)) : NotFound(id);

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, WebhookStore store, WebhookOutbox outbox, CancellationToken ct)
    {
        var deleted = await store.DeleteAsync(id, ct);
        await outbox.ReloadAsync(ct);
        return deleted ? TypedResults.NoContent() : NotFound(id);
    }

    /// <summary>The delivery log of one subscription, newest first.</summary>
    internal static async Task<Results<Ok<DeliveryPage>, ValidationProblem, ProblemHttpResult>> Deliveries(
        string id, string? limit, string? cursor, HttpRequest request, WebhookStore store, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        var (take, before) = Paging(request, limit, cursor, problems);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        if (await store.DeliveriesAsync(id, before, take + 1, ct) is not { } found)
            return NotFound(id);
        var rows = found.ToList();
        var more = rows.Count > take;
        if (more) rows.RemoveAt(rows.Count - 1);
        return TypedResults.Ok(new DeliveryPage(rows.Select(DeliveryDto.From).ToList(), more ? Cursor.Encode(rows[^1].Id) : null));
    }

    private static ProblemHttpResult NotFound(string id) => Problems.NotFound("webhook_not_found", $"No webhook '{id}'.");
}

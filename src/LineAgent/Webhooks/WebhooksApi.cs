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
            .WithDescription("Creates a subscription for `url` (checked against the SSRF guard). The answer shows the signing `secret` once.");
        g.MapGet("/", List).WithName("ListWebhooks").WithSummary("List subscriptions").WithDescription("Every subscription, oldest first, without secrets.");
        g.MapGet("/{id}", Get).WithName("GetWebhook").WithSummary("Get a subscription").WithDescription("One subscription, without its secret.");
        g.MapDelete("/{id}", Delete).WithName("DeleteWebhook").WithSummary("Delete a subscription")
            .WithDescription("Deletes the subscription; nothing more is delivered to it.");
        g.MapGet("/{id}/deliveries", Deliveries).WithName("ListWebhookDeliveries")
            .WithQueryParameters(new QueryParameter("limit", $"How many, 1-{MessageFilter.MaxLimit} (default 50), newest first.")
                { Type = QueryType.Integer, Default = "50" })
            .WithSummary("List a subscription's deliveries")
            .WithDescription("The delivery log, newest first: each event's status, attempts and the receiver's last answer.");
        return app;
    }

    /// <summary>The answer shows the secret once; later reads do not.</summary>
    internal static async Task<Results<Created<WebhookDto>, ValidationProblem>> Create(
        WebhookRequest body, WebhookStore store, WebhookOutbox outbox, WebhookTargetGuard guard, TimeProvider time, CancellationToken ct)
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

    internal static async Task<Ok<IReadOnlyList<WebhookDto>>> List(WebhookStore store, CancellationToken ct) =>
        TypedResults.Ok<IReadOnlyList<WebhookDto>>((await store.ListAsync(ct)).Select(r => WebhookDto.From(r, withSecret: false)).ToList());

    internal static async Task<Results<Ok<WebhookDto>, ProblemHttpResult>> Get(string id, WebhookStore store, CancellationToken ct) =>
        await store.GetAsync(id, ct) is { } row ? TypedResults.Ok(WebhookDto.From(row, withSecret: false)) : NotFound(id);

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, WebhookStore store, WebhookOutbox outbox, CancellationToken ct)
    {
        var deleted = await store.DeleteAsync(id, ct);
        await outbox.ReloadAsync(ct);
        return deleted ? TypedResults.NoContent() : NotFound(id);
    }

    /// <summary>The delivery log of one subscription, newest first.</summary>
    internal static async Task<Results<Ok<IReadOnlyList<DeliveryDto>>, ValidationProblem, ProblemHttpResult>> Deliveries(
        string id, string? limit, HttpRequest request, WebhookStore store, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        QueryValues.Unknown(request.Query.Keys, ["limit"], problems);
        var take = QueryValues.Limit(limit, problems);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        return await store.DeliveriesAsync(id, take, ct) is { } rows
            ? TypedResults.Ok<IReadOnlyList<DeliveryDto>>(rows.Select(DeliveryDto.From).ToList())
            : NotFound(id);
    }

    private static ProblemHttpResult NotFound(string id) => Problems.NotFound("webhook_not_found", $"No webhook '{id}'.");
}

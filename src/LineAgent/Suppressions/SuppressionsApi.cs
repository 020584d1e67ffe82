using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LineAgent.Suppressions;

public sealed record AddSuppressionRequest(string? Address, string? Reason);

public sealed record SuppressionPage(IReadOnlyList<SuppressionDto> Items, string? NextCursor);

internal static class SuppressionsApi
{
    public static IEndpointRouteBuilder MapSuppressions(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/suppressions").WithTags("Suppressions");
        g.MapGet("/", List).WithName("ListSuppressions").WithQueryParameters(OpenApiMetadata.Limit(), OpenApiMetadata.Cursor)
            .WithSummary("List suppressed addresses").WithDescription("The opt-out list, newest first, one page at a time (`limit`, `cursor`).");
        g.MapGet("/{address}", Get).WithName("GetSuppression").WithSummary("Get a suppressed address")
            .WithDescription("Whether an address (phone or email, any spelling) is suppressed, and why; 404 when it is not.");
        g.MapPost("/", Add).WithName("AddSuppression").WithSummary("Suppress an address")
            .WithMetadata(new FieldValidation<AddSuppressionRequest>((body, http, _) => Task.FromResult<IReadOnlyList<FieldProblem>>(
                AddProblems(body, http.RequestServices.GetRequiredService<IOptions<AgentOptions>>().Value.DefaultRegion, out string? _))))
            .WithDescription("Adds a phone number or email address to the opt-out list: sends to it fail with `suppressed`. 201 when added; 200 with the existing entry when it was already there.");
        g.MapDelete("/{address}", Remove).WithName("RemoveSuppression").WithSummary("Remove a suppressed address")
            .WithDescription("Takes an address off the opt-out list.");
        return app;
    }

    internal static async Task<Results<Ok<SuppressionPage>, ValidationProblem>> List(string? cursor, string? limit, HttpRequest request, SuppressionList list, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        QueryValues.Unknown(request.Query.Keys, ["limit", "cursor"], problems);
        var take = QueryValues.Limit(limit, problems);
        (long, string)? after = null;
        if (cursor is not null)
        {
            if (Cursor.TryDecode(cursor, out var at, out var address))
                after = (at, address);
            else
                problems.Add(new("cursor", "invalid_cursor", "cursor is not one this agent gave out.")); // beside a bad limit (probe)
        }
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var rows = await list.ListAsync(after, take + 1, ct);
        var more = rows.Count > take;
        var page = rows.Take(take).ToList();
        return TypedResults.Ok(new SuppressionPage(page.Select(SuppressionDto.From).ToList(),
            more ? Cursor.Encode(page[^1].CreatedAt, page[^1].Address) : null));
    }

    internal static async Task<Results<Ok<SuppressionDto>, ValidationProblem, ProblemHttpResult>> Get(
        string address, SuppressionList list, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        if (Normalize(address, agent.Value.DefaultRegion) is not { } key)
            return Problems.Validation([new("address", "invalid_recipient", $"'{address}' is not a phone number or email address.")]);
        return await list.GetAsync(key, ct) is { } row
            ? TypedResults.Ok(SuppressionDto.From(row))
            : Problems.NotFound("suppression_not_found", $"{key} is not suppressed.");
    }

    /// <summary>
    /// 201 when the address is added; 200 with the existing entry (its first reason and time) when it was already there; an
    /// entry a STOP reply or Twilio made becomes the API's, with this reason, so a START no longer lifts it.
    /// </summary>
    internal static async Task<Results<Created<SuppressionDto>, Ok<SuppressionDto>, ValidationProblem>> Add(
        AddSuppressionRequest body, SuppressionList list, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        var problems = AddProblems(body, agent.Value.DefaultRegion, out var key);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var added = await list.AddAsync(key!, body.Reason ?? "added through the API", SuppressionList.Sources.Api, null, ct);
        var row = (await list.GetAsync(key!, ct))!;
        return added
            ? TypedResults.Created($"/api/suppressions/{Uri.EscapeDataString(key!)}", SuppressionDto.From(row))
            : TypedResults.Ok(SuppressionDto.From(row));
    }

    /// <summary>Every problem of the body; <paramref name="key"/>: the address normalised, when it is one.</summary>
    private static List<FieldProblem> AddProblems(AddSuppressionRequest body, string region, out string? key)
    {
        var problems = new List<FieldProblem>();
        key = string.IsNullOrWhiteSpace(body.Address) ? null : Normalize(body.Address, region);
        if (key is null)
            problems.Add(new("address", body.Address is null ? "missing_recipient" : "invalid_recipient",
                "address must be a phone number (E.164 or national) or an email address."));
        if (body.Reason is { Length: > 500 })
            problems.Add(new("reason", "invalid_reason", "reason is longer than 500 characters."));
        else if (body.Reason?.Contains('\0') == true)
            problems.Add(new("reason", "invalid_reason", "reason contains a NUL character."));
        return problems;
    }

    internal static async Task<Results<NoContent, ValidationProblem, ProblemHttpResult>> Remove(
        string address, SuppressionList list, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        if (Normalize(address, agent.Value.DefaultRegion) is not { } key)
            return Problems.Validation([new("address", "invalid_recipient", $"'{address}' is not a phone number or email address.")]);
        return await list.RemoveAsync(key, ct) ? TypedResults.NoContent() : Problems.NotFound("suppression_not_found", $"{key} is not suppressed.");
    }

    public static string? Normalize(string address, string region) =>
        Recipients.LooksLikeEmail(address)
            ? Recipients.TryNormalizeEmail(address, out var e, out _) ? e : null
            : Recipients.TryNormalizePhone(address, region, out var p, out _) ? p : null;
}

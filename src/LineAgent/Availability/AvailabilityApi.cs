using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LineAgent.Availability;

public sealed record AvailabilityRequest(IReadOnlyList<string>? Addresses);

internal static class AvailabilityApi
{
    public const int MaxAddresses = 1000;

    public static IEndpointRouteBuilder MapAvailability(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/availability").WithTags("Availability");
        g.MapGet("/", CheckOne).WithName("CheckAvailability")
            .WithQueryParameters(new QueryParameter("address", "A phone number (E.164 or national) or an email address.") { Required = true })
            .WithSummary("Check one address")
            .WithDescription("Whether the address has iMessage (`available`, `unavailable`, `unknown`), where that is known from, and what `auto` would send as.");
        g.MapPost("/", CheckMany).WithName("CheckAvailabilityMany").WithSummary("Check many addresses")
            .WithDescription($"The same for up to {MaxAddresses} addresses, once each.");
        return app;
    }

    internal static async Task<Results<Ok<AvailabilityResult>, ValidationProblem>> CheckOne(
        string? address, HttpRequest request, AvailabilityService service, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        // `?addresses=` (the POST's field) named as what it is, not only as a missing address.
        QueryValues.Unknown(request.Query.Keys, ["address"], problems);
        if (request.Query["address"].Count > 1)
        {
            // They arrive joined with a comma, which read as one address that is no phone number (review).
            problems.Add(new("address", "invalid_query",
                $"Query parameter 'address' is given {request.Query["address"].Count} times; give one, or check several with POST /api/availability {{\"addresses\":[...]}}."));
            return Problems.Validation(problems);
        }
        var normalized = Normalize(address, "address", agent.Value.DefaultRegion, problems);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        return TypedResults.Ok(await service.CheckAsync(normalized!, ct));
    }

    internal static async Task<Results<Ok<IReadOnlyList<AvailabilityResult>>, ValidationProblem>> CheckMany(
        AvailabilityRequest body, AvailabilityService service, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        if (body.Addresses is null || body.Addresses.Count == 0)
            problems.Add(new("addresses", "missing_recipient", "addresses must list at least one phone number or email."));
        else if (body.Addresses.Count > MaxAddresses)
            problems.Add(new("addresses", "too_many", $"At most {MaxAddresses} addresses per request."));
        var normalized = (body.Addresses ?? []).Take(MaxAddresses)
            .Select((a, i) => Normalize(a, $"addresses[{i}]", agent.Value.DefaultRegion, problems)).ToList();
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var results = new List<AvailabilityResult>();
        foreach (var a in normalized.Distinct())
            results.Add(await service.CheckAsync(a!, ct));
        return TypedResults.Ok<IReadOnlyList<AvailabilityResult>>(results);
    }

    private static string? Normalize(string? address, string field, string region, List<FieldProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(address))
        {
            problems.Add(new(field, "missing_recipient", $"{field} is required: a phone number or an email address."));
            return null;
        }
        if (Recipients.LooksLikeEmail(address))
        {
            if (Recipients.TryNormalizeEmail(address, out var email, out var why)) return email;
            problems.Add(new(field, "invalid_recipient", $"{field} {why}."));
            return null;
        }
        if (Recipients.TryNormalizePhone(address, region, out var e164, out var whyPhone)) return e164;
        problems.Add(new(field, "invalid_recipient", $"{field} {whyPhone}."));
        return null;
    }
}

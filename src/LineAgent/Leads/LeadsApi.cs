using System.Text;
using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LineAgent.Leads;

internal static class LeadsApi
{
    public static IEndpointRouteBuilder MapLeads(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/leads").WithTags("Leads");
        g.MapPost("/", Create).WithName("CreateLead").ProducesProblem(409).WithSummary("Create a lead")
            .WithDescription("201 with the new lead; 200 when it was merged into the lead that has its phone or email; " +
                "409 `duplicate_lead` when its phone and email belong to two different leads.");
        g.MapGet("/", List).WithName("ListLeads")
            .WithQueryParameters(new QueryParameter("q", "Substring of the names, company, phone or email."),
                new QueryParameter("tag", "Only leads with this tag."), OpenApiMetadata.Limit(), OpenApiMetadata.Cursor)
            .WithSummary("List leads").WithDescription("Leads, newest first, one page at a time (`limit`, `cursor`).");
        g.MapPost("/import", Import).WithName("ImportLeads").Accepts<IFormFile>("text/csv", "multipart/form-data").DisableAntiforgery()
            .WithQueryParameters(
                new QueryParameter("defaultCountryCode", "Region (US, GB) or calling code (1, 44) for national phone numbers; default Agent:DefaultRegion."),
                new QueryParameter("tags", "Tags to add to every imported lead, comma-separated."))
            .WithSummary("Import leads from CSV")
            .WithDescription("The CSV as the raw body (text/csv) or as the `file` of a form. Common headers are recognised; other columns go " +
                "to `fields`. Answers the counts of created, updated and skipped rows, with the reason of each skipped row.");
        g.MapGet("/{id}", Get).WithName("GetLead").WithSummary("Get a lead").WithDescription("One lead.");
        g.MapPatch("/{id}", Update).WithName("UpdateLead").ProducesProblem(409).WithSummary("Edit a lead")
            .WithDescription("Changes the given fields (absent or null = unchanged, \"\" = cleared); 409 `duplicate_lead` when another lead has that phone or email.");
        g.MapDelete("/{id}", Delete).WithName("DeleteLead").WithSummary("Delete a lead").WithDescription("Deletes the lead; its messages stay.");
        return app;
    }

    /// <summary>201 for a new lead; 200 when it was merged into the lead that has its phone or email.</summary>
    internal static async Task<Results<Created<LeadDto>, Ok<LeadDto>, ValidationProblem, ProblemHttpResult>> Create(
        LeadInput body, LeadStore leads, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        var (values, problems) = LeadStore.Validate(body, agent.Value.DefaultRegion, partial: false);
        if (values is null)
            return Problems.Validation(problems);
        return await leads.UpsertAsync(values, ct) switch
        {
            UpsertResult.Created c => TypedResults.Created($"/api/leads/{c.Lead.Id}", LeadDto.From(c.Lead)),
            UpsertResult.Merged m => TypedResults.Ok(LeadDto.From(m.Lead)),
            UpsertResult.Conflict x => Problems.Conflict("duplicate_lead", $"Cannot merge: {x.Detail}."),
            _ => throw new InvalidOperationException(),
        };
    }

    internal static async Task<Results<Ok<LeadPage>, ValidationProblem>> List(string? q, string? tag, int? limit, string? cursor, LeadStore leads, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        var take = limit ?? 50;
        if (take is < 1 or > MessageFilter.MaxLimit)
            problems.Add(new("limit", "invalid_filter", $"limit must be 1-{MessageFilter.MaxLimit}."));
        if (q is { Length: > 500 })
            problems.Add(new("q", "invalid_filter", "q is longer than 500 characters."));
        long? before = null;
        if (cursor is not null)
        {
            if (Cursor.TryDecode(cursor, out var seq)) before = seq;
            else problems.Add(new("cursor", "invalid_cursor", "cursor is not one this agent gave out."));
        }
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var rows = (await leads.SearchAsync(q, tag, before, take + 1, ct)).ToList();
        var more = rows.Count > take;
        if (more) rows.RemoveAt(rows.Count - 1);
        return TypedResults.Ok(new LeadPage(rows.Select(LeadDto.From).ToList(), more ? Cursor.Encode(rows[^1].Seq) : null));
    }

    internal static async Task<Results<Ok<LeadDto>, ProblemHttpResult>> Get(string id, LeadStore leads, CancellationToken ct) =>
        await leads.GetAsync(id, ct) is { } l ? TypedResults.Ok(LeadDto.From(l)) : LeadNotFound(id);

    internal static async Task<Results<Ok<LeadDto>, ValidationProblem, ProblemHttpResult>> Update(
        string id, LeadInput body, LeadStore leads, Db db, IOptions<AgentOptions> agent, TimeProvider time, CancellationToken ct)
    {
        var existing = await leads.GetAsync(id, ct);
        if (existing is null)
            return LeadNotFound(id);
        var (values, problems) = LeadStore.Validate(body, agent.Value.DefaultRegion, partial: true);
        if (values is null)
            return Problems.Validation(problems);
        var merged = LeadStore.Merge(existing, values, Time.ToMs(time.GetUtcNow()), clearEmpty: true);
        if (body.Phone == "") merged.Phone = null;
        if (body.Email == "") merged.Email = null;
        if (body.Tags is not null) merged.Tags = System.Text.Json.JsonSerializer.Serialize(values.Tags);
        if (merged.Phone is null && merged.Email is null)
            return Problems.Validation([new("phone", "missing_recipient", "A lead needs a phone or an email.")]);
        await using var c = await db.OpenAsync(ct);
        await using var tx = (Microsoft.Data.Sqlite.SqliteTransaction)await c.BeginTransactionAsync(ct);
        try
        {
            await LeadStore.SaveAsync(c, tx, merged);
        }
        catch (Microsoft.Data.Sqlite.SqliteException e) when (IdempotencyStore.IsUniqueViolation(e))
        {
            return Problems.Conflict("duplicate_lead", "Another lead already has that phone or email.");
        }
        await tx.CommitAsync(ct);
        return TypedResults.Ok(LeadDto.From(merged));
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, LeadStore leads, CancellationToken ct) =>
        await leads.DeleteAsync(id, ct) ? TypedResults.NoContent() : LeadNotFound(id);

    /// <summary>CSV as the raw body (text/csv) or as the `file` of a multipart form; streamed, never loaded whole.</summary>
    internal static async Task<Results<Ok<ImportResult>, ValidationProblem>> Import(
        HttpRequest request, string? defaultCountryCode, string? tags, LeadImport import, IOptions<AgentOptions> agent, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        var region = LeadStore.RegionOf(defaultCountryCode, agent.Value.DefaultRegion, problems);
        Stream body;
        if (request.HasFormContentType)
        {
            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(ct);
            }
            catch (Exception e) when (e is InvalidDataException or IOException && !ct.IsCancellationRequested)
            {
                // No boundary, a truncated body, more than 1,024 parts: the upload itself is unreadable.
                problems.Add(new("file", "invalid_upload", $"The multipart upload cannot be read: {e.Message}"));
                return Problems.Validation(problems);
            }
            var file = form.Files.GetFile("file") ?? form.Files.FirstOrDefault();
            if (file is null)
            {
                problems.Add(new("file", "missing_file", "Send the CSV as the raw body (Content-Type: text/csv) or as the `file` field of a form."));
                return Problems.Validation(problems);
            }
            body = file.OpenReadStream();
        }
        else
        {
            body = request.Body;
        }
        if (problems.Count > 0)
            return Problems.Validation(problems);
        using var reader = new StreamReader(body, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 64 * 1024);
        var extraTags = (tags ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        try
        {
            return TypedResults.Ok(await import.ImportAsync(reader, region, extraTags, ct));
        }
        catch (ImportRefusedException refused)
        {
            problems.Add(refused.Problem);
            return Problems.Validation(problems);
        }
    }

    private static ProblemHttpResult LeadNotFound(string id) => Problems.NotFound("lead_not_found", $"No lead '{id}'.");
}

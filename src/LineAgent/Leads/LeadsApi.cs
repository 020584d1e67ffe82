using Dapper;
using System.Text;
using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace LineAgent.Leads;

internal static class LeadsApi
{
    public static IEndpointRouteBuilder MapLeads(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/leads").WithTags("Leads");
        g.MapPost("/", Create).WithName("CreateLead").ProducesProblem(409).WithSummary("Create a lead")
            .WithMetadata(FieldChecks(partial: false))
            .WithDescription("201 with the new lead; 200 when it was merged into the lead that has its phone or email; " +
                "409 `duplicate_lead` when its phone and email belong to two different leads.");
        g.MapGet("/", List).WithName("ListLeads")
            .WithQueryParameters(new QueryParameter("q", "Substring of the names, company, phone or email."),
                new QueryParameter("tag", "Only leads with this tag."), OpenApiMetadata.Limit(), OpenApiMetadata.Cursor)
            .WithSummary("List leads").WithDescription("Leads, newest first, one page at a time (`limit`, `cursor`).");
        g.MapPost("/import", Import).WithName("ImportLeads").Accepts<IFormFile>(CsvTypes[0], [.. CsvTypes[1..], "multipart/form-data"]).DisableAntiforgery()
            .WithQueryParameters(
                new QueryParameter("defaultCountryCode", "Region (US, GB) or calling code (1, 44) for national phone numbers; default Agent:DefaultRegion."),
                new QueryParameter("tags", "Tags to add to every imported lead, comma-separated."))
            .WithSummary("Import leads from CSV")
            .WithDescription("The CSV as the raw body (text/csv) or as the `file` of a form. Common headers are recognised; other columns go " +
                "to `fields`. Answers the counts of created, updated and skipped rows, with the reason of each skipped row.");
        g.MapGet("/{id}", Get).WithName("GetLead").WithSummary("Get a lead").WithDescription("One lead.");
        g.MapPatch("/{id}", Update).WithName("UpdateLead").ProducesProblem(409).WithSummary("Edit a lead")
            .WithMetadata(FieldChecks(partial: true))
            .WithDescription("Changes the given fields (absent or null = unchanged, \"\" = cleared); 409 `duplicate_lead` when another lead has that phone or email.");
        g.MapDelete("/{id}", Delete).WithName("DeleteLead").WithSummary("Delete a lead").WithDescription("Deletes the lead; its messages stay.");
        return app;
    }

    /// <summary>What a body with a field of the wrong type or an unknown field is still checked for: its other fields (probe: `{"firstName":5,"phone":"abc"}` named only firstName).</summary>
    private static FieldValidation<LeadInput> FieldChecks(bool partial) => new((body, http, _) => Task.FromResult<IReadOnlyList<FieldProblem>>(
        LeadStore.Validate(body, http.RequestServices.GetRequiredService<IOptions<AgentOptions>>().Value.DefaultRegion, partial).Problems),
        // `{"email":5}` is not also told "a lead needs a phone or an email" (review).
        new Dictionary<string, string[]> { ["missing_recipient"] = ["phone", "email"] });

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

    internal static async Task<Results<Ok<LeadPage>, ValidationProblem>> List(string? q, string? tag, string? limit, string? cursor, HttpRequest request, LeadStore leads, CancellationToken ct)
    {
        var problems = new List<FieldProblem>();
        QueryValues.Unknown(request.Query.Keys, ["q", "tag", "limit", "cursor"], problems);
        var take = QueryValues.Limit(limit, problems);
        if (q is { Length: > 500 } && QueryValues.CodePoints(q) > 500)
            problems.Add(new("q", "invalid_filter", "q is longer than 500 characters."));
        var before = QueryValues.Before(cursor, problems);
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
            // Name the field and the lead that holds it, as a create's conflict does.
            var holder = await c.QueryFirstOrDefaultAsync<(string Id, string Field)>(
                "SELECT id AS Id, CASE WHEN @Phone IS NOT NULL AND phone = @Phone THEN 'phone' ELSE 'email' END AS Field FROM leads " +
                "WHERE id <> @Id AND ((@Phone IS NOT NULL AND phone = @Phone) OR (@Email IS NOT NULL AND email = @Email)) LIMIT 1",
                new { merged.Id, merged.Phone, merged.Email }, tx);
            return Problems.Conflict("duplicate_lead", holder.Id is null
                ? "Another lead already has that phone or email."
                : $"Lead {holder.Id} already has this {holder.Field} ({(holder.Field == "phone" ? merged.Phone : merged.Email)}); merge the two or change one.");
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
        QueryValues.Unknown(request.Query.Keys, ["defaultCountryCode", "tags"], problems);
        var region = LeadStore.RegionOf(defaultCountryCode, agent.Value.DefaultRegion, problems);
        Stream body;
        if (request.HasFormContentType)
        {
            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(ct);
            }
            catch (Exception e) when (e is InvalidDataException or IOException && e is not BadHttpRequestException && !ct.IsCancellationRequested)
            {
                // No boundary, a truncated body, more than 1,024 parts: the upload itself is unreadable.
                problems.Add(new("file", "invalid_upload", $"The multipart upload cannot be read: {e.Message}"));
                return Problems.Validation(problems);
            }
            // One CSV per upload, and the options as query parameters: a second file, or tags and defaultCountryCode as form
            // fields, were ignored without a word (probe: national numbers read as US when the form said GB).
            if (form.Files.Count > 1)
                problems.Add(new("file", "invalid_upload", $"The form has {form.Files.Count} files; send one CSV per upload."));
            foreach (var key in form.Keys)
                problems.Add(new(Problems.Echo(key, 60), "unknown_field", $"The form field '{Problems.Echo(key, 60)}' is not read: give defaultCountryCode and tags as query parameters (?tags=...), and the CSV as the file."));
            if (problems.Count > 0)
                return Problems.Validation(problems);
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
            // CSV comes as text/csv; spreadsheets and browsers also label it application/csv, text/plain or
            // application/vnd.ms-excel. No Content-Type, or JSON, is a client's mistake: nothing is read.
            var type = request.ContentType is { } ct0 && MediaTypeHeaderValue.TryParse(ct0, out var parsed) ? parsed.MediaType.ToString().ToLowerInvariant() : null;
            if (type is null || !CsvTypes.Contains(type))
                throw new AgentProblemException(415, "unsupported_media_type",
                    $"Send the CSV as the body with Content-Type: text/csv, or as the `file` field of a multipart/form-data upload; the request had {(type is null ? "no Content-Type" : $"'{type}'")}.");
            body = request.Body;
        }
        var extraTags = (tags ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (extraTags.Length > 50 || extraTags.Any(t => t.Length > 100 || t.Any(char.IsControl)))
            problems.Add(new("tags", "invalid_tags", "Query parameter 'tags': at most 50 comma-separated tags of 1-100 printable characters."));
        if (problems.Count > 0)
            return Problems.Validation(problems);
        // Strict UTF-8: a file in another encoding (Latin-1, Windows-1252) is refused, not stored with U+FFFD in place of
        // its accents. A UTF-8 BOM is skipped as this encoding's preamble; a UTF-16 BOM switches to UTF-16.
        using var reader = new StreamReader(body, LeadImport.Utf8Marked, detectEncodingFromByteOrderMarks: true, bufferSize: 64 * 1024);
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

    /// <summary>What a CSV body may be labelled: text/csv, and what spreadsheets and browsers also send for a .csv file.</summary>
    private static readonly string[] CsvTypes = ["text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "text/comma-separated-values"];

    private static ProblemHttpResult LeadNotFound(string id) => Problems.NotFound("lead_not_found", $"No lead '{id}'.");
}

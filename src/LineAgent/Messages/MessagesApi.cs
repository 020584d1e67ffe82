using System.Text;
using System.Text.Json;
using CsvHelper;
using Dapper;
using LineAgent.Api;
using LineAgent.Lines;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Data.Sqlite;

namespace LineAgent.Messages;

public sealed record MessagePage(IReadOnlyList<MessageDto> Items, string? NextCursor);

internal static class MessagesApi
{
    public static IEndpointRouteBuilder MapMessages(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/messages").WithTags("Messages");
        g.MapPost("/", Send).WithName("SendMessage")
            .WithMetadata(new FieldValidation<SendMessageRequest>(async (body, http, ct) =>
                await http.RequestServices.GetRequiredService<MessageValidator>().ValidateAsync(body, ct, fieldsOnly: true) switch
                {
                    Validated.Invalid invalid => invalid.Problems,
                    Validated.NotFound nf => [new(nf.Code == "line_not_found" ? "lineId" : "leadId", nf.Code, nf.Detail)],
                    _ => [],
                }, new Dictionary<string, string[]>
                {
                    ["missing_recipient"] = ["recipientPhone", "recipientEmail", "leadId", "type"],
                    ["invalid_schedule"] = ["scheduledAt", "timeZone"],
                }))
            .ProducesProblem(404).ProducesProblem(409).ProducesProblem(500).AcceptsIdempotencyKey()
            .WithSummary("Send a message")
            .WithDescription("Sends now or at `scheduledAt`. Now: waits for the channel and answers 201 `sent` (or `sending` after " +
                "Api:SendWaitSeconds), 202 `queued` with `notBefore` when the line's pacing holds it, or 500 `delivery_failed` with the " +
                "failed record. Scheduled: 201 `scheduled`. 404 for an unknown `leadId` or `lineId`. 400 `window_never_open` when the " +
                "recipient's hours (`recipientWindow`, or the line's) never fall within the line's send window.");
        g.MapGet("/", List).WithName("ListMessages").WithQueryParameters(OpenApiMetadata.MessageFilters(paging: true))
            .WithSummary("List messages")
            .WithDescription("The history, newest first, one page at a time (`limit`, `cursor`), with filters.");
        g.MapGet("/export", Export).WithName("ExportMessages")
            .Produces(200, contentType: "text/csv").Produces(200, contentType: "application/x-ndjson")
            .WithQueryParameters([.. OpenApiMetadata.MessageFilters(paging: false),
                new QueryParameter("format", "`csv` (default) or `ndjson` (one message per line).") { Type = QueryType.Enum, Values = ["csv", "ndjson"], Default = "csv" }])
            .WithSummary("Export messages")
            .WithDescription("Every message that matches the filters, streamed as CSV or NDJSON.");
        g.MapGet("/{id}", Get).WithName("GetMessage").WithSummary("Get a message").WithDescription("One message as it stands now.");
        g.MapGet("/{id}/events", Events).WithName("GetMessageEvents").WithSummary("List a message's events")
            .WithDescription("Every status change of the message with its time, oldest first.");
        g.MapGet("/{id}/replies", Replies).WithName("GetMessageReplies").WithSummary("List replies to a message")
            .WithDescription("Inbound messages matched to this message, oldest first.");
        g.MapPatch("/{id}", Update).WithName("UpdateMessage")
            .WithMetadata(new FieldValidation<UpdateMessageRequest>(async (body, http, ct) =>
                {
                    var problems = UpdateProblems(body, out _);
                    // Route values as the failed request had them: a body of the wrong shape is answered by the exception handler.
                    var route = http.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.RouteValues ?? http.Request.RouteValues;
                    if (route.TryGetValue("id", out var value) && value is string id)
                        await ContentForLeadAsync(id, body.Content, http.RequestServices.GetRequiredService<MessageStore>(),
                            http.RequestServices.GetRequiredService<Leads.LeadStore>(), problems, ct);
                    return problems;
                },
                new Dictionary<string, string[]> { ["missing_change"] = ["content", "scheduledAt"], ["invalid_schedule"] = ["scheduledAt", "timeZone"] })).ProducesProblem(409).WithSummary("Edit a scheduled message")
            .WithDescription("Changes `content` and/or `scheduledAt` of a `scheduled` message; 409 `not_scheduled` otherwise, and 409 " +
                "`waiting_for_previous_step` for the time of a follow-up still waiting for its previous step. 400 `window_never_open` when " +
                "the new time leaves the recipient's hours no moment inside the line's send window.");
        g.MapPost("/{id}/cancel", Cancel).WithName("CancelMessage").ProducesProblem(409).WithSummary("Cancel a message")
            .WithDescription("A `scheduled` or `queued` message becomes `cancelled`, and so does a `sending` iMessage or SMS that is " +
                "still waiting for Messages.app (busy with another line's send) and has reached nothing; 409 `not_cancellable` otherwise " +
                "(its send has started: it may go out).");
        g.MapPost("/{id}/retry", Retry).WithName("RetryMessage").ProducesProblem(409).ProducesProblem(500).AcceptsIdempotencyKey()
            .WithQueryParameters(new QueryParameter("force",
                "Retry a message that may have gone out (`unconfirmed`, `interrupted`, `channel_error`, `restored`); without it such a retry is a 409 `maybe_sent`.")
                { Type = QueryType.Boolean, Default = "false" })
            .WithSummary("Retry a failed message")
            .WithDescription("Sends a failed message again as a new message (its `retryOf` names the failed one). No body, or `{}`. " +
                "409 `not_failed` for a message that did not fail; 409 `already_retried` (with `retryId`) for one retried before, or sent " +
                "again as SMS by its fallback (`fallbackTo`; a cancelled retry or fallback does not count).");
        return app;
    }

    /// <summary>Idempotency-Key: <see cref="IdempotencyFilter"/> replays or refuses before this runs.</summary>
    internal static async Task<Results<Created<MessageDto>, Accepted<MessageDto>, ValidationProblem, ProblemHttpResult>> Send(
        SendMessageRequest body, HttpContext http, MessageValidator validator, MessageIntake intake, SendResponder responder,
        IdempotencyStore idempotency, TimeProvider time, CancellationToken ct)
    {
        var validated = await validator.ValidateAsync(body, ct);
        switch (validated)
        {
            case Validated.Invalid invalid:
                return Problems.Validation(invalid.Problems);
            case Validated.NotFound nf:
                return Problems.NotFound(nf.Code, nf.Detail);
        }
        var draft = ((Validated.Ok)validated).Draft;
        if (intake.NeverInWindow(draft, time.GetUtcNow()) is { } never)
            // The hours are the send's own, or the line's (Pacing:RecipientWindow).
            return Problems.Validation([new(draft.Sequence?.Window is null ? "lineId" : "recipientWindow", FailureCodes.WindowNeverOpen, never)]);
        var key = http.Features.Get<IdempotencyRequest>();
        var row = await intake.AcceptAsync(draft, key?.Key, key?.Hash, ct);
        return await AnswerAsync(row, key?.Key, idempotency, responder);
    }

    /// <summary>Answers a request that stored <paramref name="row"/>, and keeps that answer for its Idempotency-Key.</summary>
    internal static async Task<Results<Created<MessageDto>, Accepted<MessageDto>, ValidationProblem, ProblemHttpResult>> AnswerAsync(
        MessageRow row, string? key, IdempotencyStore idempotency, SendResponder responder)
    {
        // The message is on disk: a client that hangs up does not stop it, and its answer is still kept.
        SendAnswer answer;
        try
        {
            answer = row.Status == MessageStatus.Scheduled
                ? SendResponder.Answer(row)
                : await responder.AwaitAsync(row.Id, CancellationToken.None);
        }
        catch (Exception e) when (Storage.StorageHealth.FaultOf(e) is not null || e is Microsoft.Data.Sqlite.SqliteException)
        {
            // Reading its progress failed, but the message is stored (and may go out): never the 503 "nothing was
            // stored" that a client would answer with a second message. It is answered as stored: 202 or 201.
            answer = SendResponder.Answer(row);
        }
        if (key is not null)
            // Best effort: a replay without the kept answer is answered from the message's state (IdempotencyFilter).
            await idempotency.TrySaveResponseAsync(key, answer.Status, answer.SerializeBody());
        return answer.ToResult().Result switch
        {
            Created<MessageDto> c => c,
            Accepted<MessageDto> a => a,
            ProblemHttpResult p => p,
            var other => throw new InvalidOperationException($"unexpected {other}"),
        };
    }

    internal static async Task<Results<Ok<MessagePage>, ValidationProblem>> List(HttpRequest request, MessageHistory history, CancellationToken ct)
    {
        var (filter, problems) = MessageFilter.Parse(request.Query, paging: true);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        var (rows, next) = await history.PageAsync(filter, ct);
        return TypedResults.Ok(new MessagePage(rows.Select(MessageDto.From).ToList(), next is { } before ? Cursor.Encode(before) : null));
    }

    internal static async Task<Results<EmptyHttpResult, ValidationProblem>> Export(HttpContext http, MessageHistory history, CancellationToken ct)
    {
        var (filter, problems) = MessageFilter.Parse(http.Request.Query, paging: false, alsoKnown: ["format"]);
        var format = http.Request.Query["format"].ToString() is { Length: > 0 } f ? f.ToLowerInvariant() : "csv";
        if (format is not ("csv" or "ndjson") && http.Request.Query["format"].Count <= 1) // twice: Parse said so
            problems.Add(new("format", "invalid_filter", "format must be csv or ndjson."));
        if (problems.Count > 0)
            return Problems.Validation(problems);

        // The query runs (and may fail) before the first byte: an error here is still a clean problem response.
        await using var rows = await history.OpenExportAsync(filter, ct);
        try
        {
            await WriteExportAsync(http.Response, format, rows.ReadAsync(), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Bytes are out: a status can no longer say it. Abort, so the client sees a broken transfer, never a short 200.
            http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("LineAgent.Export").LogError(e, "Export failed after it started; connection aborted");
            http.Abort();
        }
        return TypedResults.Empty;
    }

    private static async Task WriteExportAsync(HttpResponse response, string format, IAsyncEnumerable<MessageRow> rows, CancellationToken ct)
    {
        response.Headers.ContentDisposition = $"attachment; filename=\"messages.{format}\"";
        if (format == "ndjson")
        {
            response.ContentType = "application/x-ndjson; charset=utf-8";
            await foreach (var row in rows.WithCancellation(ct))
            {
                await JsonSerializer.SerializeAsync(response.Body, MessageDto.From(row), AgentJson.Options, ct);
                await response.Body.WriteAsync("\n"u8.ToArray(), ct);
            }
        }
        else
        {
            response.ContentType = "text/csv; charset=utf-8";
            await using var writer = new StreamWriter(response.Body, new UTF8Encoding(false), 64 * 1024, leaveOpen: true);
            // Replies are written by strangers: a cell like =HYPERLINK(...) must stay text in a spreadsheet.
            await using var csv = new CsvWriter(writer, new CsvHelper.Configuration.CsvConfiguration(System.Globalization.CultureInfo.InvariantCulture)
            {
                InjectionOptions = CsvHelper.Configuration.InjectionOptions.Escape,
            });
            // true/false as in the JSON, not .NET's True/False.
            var booleans = csv.Context.TypeConverterOptionsCache.GetOptions<bool>();
            booleans.BooleanTrueValues.Clear();
            booleans.BooleanTrueValues.Add("true");
            booleans.BooleanFalseValues.Clear();
            booleans.BooleanFalseValues.Add("false");
            csv.WriteHeader<MessageCsvRow>();
            await csv.NextRecordAsync();
            await foreach (var row in rows.WithCancellation(ct))
            {
                csv.WriteRecord(MessageCsvRow.From(row));
                await csv.NextRecordAsync();
            }
            await csv.FlushAsync();
        }
    }

    internal static async Task<Results<Ok<MessageDto>, ProblemHttpResult>> Get(string id, MessageStore store, CancellationToken ct) =>
        await store.GetAsync(id, ct) is { } row ? TypedResults.Ok(MessageDto.From(row)) : MessageNotFound(id);

    internal static async Task<Results<Ok<IReadOnlyList<MessageEventDto>>, ProblemHttpResult>> Events(string id, MessageStore store, CancellationToken ct)
    {
        if (await store.GetAsync(id, ct) is null)
            return MessageNotFound(id);
        var events = await store.EventsAsync(id, ct);
        return TypedResults.Ok<IReadOnlyList<MessageEventDto>>(events.Select(MessageEventDto.From).ToList());
    }

    internal static async Task<Results<Ok<IReadOnlyList<MessageDto>>, ProblemHttpResult>> Replies(
        string id, MessageStore store, MessageHistory history, CancellationToken ct)
    {
        if (await store.GetAsync(id, ct) is null)
            return MessageNotFound(id);
        var rows = await history.RepliesAsync(id, ct);
        return TypedResults.Ok<IReadOnlyList<MessageDto>>(rows.Select(MessageDto.From).ToList());
    }

    /// <summary>What is wrong with an edit's fields; <paramref name="at"/>: its new time, when it has a valid one.</summary>
    internal static List<FieldProblem> UpdateProblems(UpdateMessageRequest body, out DateTimeOffset? at)
    {
        var problems = new List<FieldProblem>();
        if (body.Content is null && body.ScheduledAt is null)
            problems.Add(new("content", "missing_change", "Give content and/or scheduledAt to change."));
        MessageValidator.ValidateContent(body.Content, problems, required: body.Content is not null);
        at = Schedules.Read(body.ScheduledAt, body.TimeZone, problems);
        if (body.ScheduledAt is not null && string.IsNullOrWhiteSpace(body.ScheduledAt) && !problems.Any(p => p.Field == "scheduledAt"))
            problems.Add(new("scheduledAt", "invalid_schedule", "scheduledAt is empty; give an ISO 8601 time such as 2026-12-01T09:00:00Z."));
        return problems;
    }

    /// <summary>
    /// An edit's new content: for a message to a lead (a bulk's, or a send with leadId) a template filled from that lead, as
    /// when the message was made (probe K: an edited follow-up of a bulk went out with `{{firstName}}` as typed); else as
    /// given. Its problems are added (with the edit's others: probe L); not looked at when the content has its own.
    /// </summary>
    internal static async Task<string?> ContentForLeadAsync(string id, string? edited, MessageStore messages, Leads.LeadStore leads,
        List<FieldProblem> problems, CancellationToken ct)
    {
        // The text as stored is the lead's already (the console's edit starts from it): not filled in again, or a lead's own
        // value with braces would be read as a placeholder (review).
        if (edited is null || !(edited.Contains('{') || edited.Contains('}')) || problems.Any(p => p.Field == "content")
            || await messages.GetAsync(id, ct) is not { LeadId: { } leadId } row || row.Content == edited)
            return edited;
        var lead = await leads.GetAsync(leadId, ct);
        var before = problems.Count;
        // A deleted lead fills nothing in: only fallbacks, else the placeholder is named.
        var content = Batches.Templates.RenderForLead(edited, "content", lead ?? new Leads.LeadRow { Id = leadId }, problems);
        if (lead is null)
            for (var i = before; i < problems.Count; i++)
                if (problems[i].Code == "missing_field")
                    problems[i] = problems[i] with { Detail = $"{problems[i].Detail} Lead {leadId} of this message was deleted." };
        if (content is not null && !ReferenceEquals(content, edited))
            MessageValidator.ValidateContent(content, problems, required: true);
        return content;
    }

    internal static async Task<Results<Ok<MessageDto>, ValidationProblem, ProblemHttpResult>> Update(
        string id, UpdateMessageRequest body, MessageLifecycle lifecycle, LineRegistry lines, Scheduling.LinePacer pacer, TimeProvider time,
        Leads.LeadStore leads, CancellationToken ct)
    {
        var problems = UpdateProblems(body, out var at);
        var content = await ContentForLeadAsync(id, body.Content, lifecycle.Store, leads, problems, ct);
        if (problems.Count > 0)
            return Problems.Validation(problems);
        body = body with { Content = content };
        // Moved to a time (another season) where its recipient's hours never meet the line's window: it would wait for ever.
        if (at is { } moved && await lifecycle.Store.GetAsync(id, ct) is { Status: MessageStatus.Scheduled, IsWaiting: false } before
            && lines.Find(before.LineId) is { } line
            && pacer.NeverInWindow(line, before, time.GetUtcNow(), Time.ToMs(moved)) is { } never)
            return Problems.Validation([new("scheduledAt", FailureCodes.WindowNeverOpen, never)]);

        var changed = await lifecycle.RescheduleAsync(id, body.Content, at is { } a ? Time.ToMs(a) : null, string.IsNullOrWhiteSpace(body.TimeZone) ? null : body.TimeZone.Trim(), Describe(body, at), ct);
        if (changed is null)
            return await lifecycle.Store.GetAsync(id, ct) is not { } current ? MessageNotFound(id)
                : current.IsWaiting && current.Status == MessageStatus.Scheduled
                // A follow-up's time is set when its previous step is sent ('after' that send); it has none to move yet.
                ? Problems.Conflict("waiting_for_previous_step", $"Message {id} is step {current.SequenceStep} of sequence {current.SequenceId}: it is due " +
                    $"{Durations.Format(TimeSpan.FromMilliseconds(current.FollowUpAfter ?? 0))} after step {current.SequenceStep - 1} is sent, so its time cannot be set. " +
                    "Its content can be edited; or cancel it.", new Dictionary<string, object?> { ["messageStatus"] = current.Status })
                : Problems.Conflict("not_scheduled", $"Message {id} is {current.Status}; only a scheduled message can be edited.",
                    new Dictionary<string, object?> { ["messageStatus"] = current.Status });
        return TypedResults.Ok(MessageDto.From(changed));
    }

    internal static async Task<Results<Ok<MessageDto>, ProblemHttpResult>> Cancel(
        string id, MessageLifecycle lifecycle, CancellationToken ct)
    {
        var cancelled = await lifecycle.CancelAsync(id, "cancelled through the API", ct);
        if (cancelled is null)
            return await lifecycle.Store.GetAsync(id, ct) is { } current
                ? Problems.Conflict("not_cancellable", current.Status == MessageStatus.Sending
                    ? $"Message {id} is sending: it was handed to {current.Channel ?? "its channel"} and may go out, so it can no longer be cancelled."
                    : $"Message {id} is {current.Status}; only a scheduled or queued message (or one still waiting for Messages.app) can be cancelled.",
                    new Dictionary<string, object?> { ["messageStatus"] = current.Status })
                : MessageNotFound(id);
        return TypedResults.Ok(MessageDto.From(cancelled));
    }

    internal static async Task<Results<Created<MessageDto>, Accepted<MessageDto>, ValidationProblem, ProblemHttpResult>> Retry(
        string id, HttpContext http, MessageStore store, LineRegistry lines, MessageIntake intake, SendResponder responder,
        IdempotencyStore idempotency, TimeProvider time, CancellationToken ct)
    {
        // Retry takes no options: an empty body or {} only, and ?force. Anything else may be a client's mistake; say so, all of it.
        var problems = new List<FieldProblem>();
        if (await UnexpectedBodyAsync(http.Request, ct) is { } bodyProblem)
            problems.Add(bodyProblem);
        QueryValues.Unknown(http.Request.Query.Keys, ["force"], problems);
        var forceValues = http.Request.Query["force"];
        var force = false;
        if (forceValues.Count > 1 || (forceValues.Count == 1 && !bool.TryParse(forceValues[0]?.Trim(), out force)))
            problems.Add(new("force", "invalid_query", $"Query parameter 'force' must be true or false; got '{Problems.Echo(forceValues.ToString())}'."));
        if (problems.Count > 0)
            return Problems.Validation(problems);

        var original = await store.GetAsync(id, ct);
        if (original is null)
            return MessageNotFound(id);
        if (original.Status != MessageStatus.Failed)
            return Problems.Conflict("not_failed", $"Message {id} is {original.Status}; only a failed message can be retried.",
                new Dictionary<string, object?> { ["messageStatus"] = original.Status });
        if (FailureCodes.MaybeSent(original.ErrorCode) && !force)
            return Problems.Conflict("maybe_sent", $"Message {id} may have gone out ({original.ErrorCode}); retrying could send it twice. " +
                "Check with the recipient, then retry with ?force=true.", new Dictionary<string, object?> { ["messageStatus"] = original.Status });
        var line = lines.Find(original.LineId);
        if (line is null)
            return Problems.NotFound("line_not_found", $"Line '{original.LineId}' of message {id} is no longer configured.");
        if (!lines.IsActive(line.Id))
            return Problems.Validation([new("lineId", "line_inactive", $"Line '{line.Id}' is paused.")]);

        // The same message again: its recipient's hours and zone as they were worked out for it (a probe found a retry sent
        // outside them, at once), and its stop-on-reply. Not its follow-ups: those stay with the sequence.
        RecipientZone? zone = original.RecipientTimeZone is { } zoneId && Schedules.TryFindZone(zoneId, out var tz)
            ? new RecipientZone(tz!, original.RecipientTimeZoneSource ?? RecipientZones.FromLine) : null;
        var draft = new MessageDraft(original.Content, original.Type, original.RequestedType, line, original.LeadId, original.BatchId,
            original.RecipientPhone, original.RecipientEmail, original.RecipientName, null, null, original.Subject,
            new SequenceFields(original.StopOnReply, [], RecipientWindowDto.Parse(original.RecipientWindow)), zone);
        if (intake.NeverInWindow(draft, time.GetUtcNow()) is { } never)
            return Problems.Validation([new("lineId", FailureCodes.WindowNeverOpen, never)]);
        var key = http.Features.Get<IdempotencyRequest>();
        MessageRow row;
        try
        {
            row = await intake.AcceptAsync(draft, key?.Key, key?.Hash, ct, retryOf: original.Id);
        }
        catch (AlreadyRetriedException e)
        {
            // A second click, or a client's retry loop: the first retry is the one that sends.
            var how = e.RetryId == original.FallbackTo ? $"was already sent again as SMS {e.RetryId} (its fallback)" : $"was already retried as {e.RetryId}";
            return Problems.Conflict("already_retried", $"Message {id} {how}; see that message. " +
                $"If it failed too, retry it instead.", new Dictionary<string, object?> { ["messageStatus"] = original.Status, ["retryId"] = e.RetryId });
        }
        return await AnswerAsync(row, key?.Key, idempotency, responder);
    }

    private static async Task<FieldProblem?> UnexpectedBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength is 0 || (request.ContentLength is null && !request.Headers.TransferEncoding.Any()))
            return null;
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var buffer = new char[4097];
        var read = await reader.ReadBlockAsync(buffer.AsMemory(), ct);
        var text = new string(buffer, 0, read).Trim();
        if (text.Length == 0)
            return null;
        try
        {
            if (read < buffer.Length && System.Text.Json.Nodes.JsonNode.Parse(text) is System.Text.Json.Nodes.JsonObject { Count: 0 })
                return null;
        }
        catch (JsonException) { }
        return new FieldProblem("body", "invalid_body", "retry takes no body (or {}); it resends the failed message as it was.");
    }

    internal static ProblemHttpResult MessageNotFound(string id) => Problems.NotFound("message_not_found", $"No message '{id}'.");

    private static string Describe(UpdateMessageRequest b, DateTimeOffset? at) =>
        string.Join("; ", new[] { b.Content is null ? null : "content edited", at is null ? null : $"rescheduled to {Time.Iso(at.Value)}" }
            .Where(s => s is not null));

}

/// <summary>One CSV line of the export.</summary>
public sealed record MessageCsvRow(
    string Id, string Direction, string Status, string Type, string RequestedType, string Delivery, string LineId,
    string? RecipientPhone, string? RecipientEmail, string? RecipientName, string Content, string? Subject,
    string? LeadId, string? BatchId, string? ScheduledAt, string? SentAt, string? DeliveredAt, string? ReadAt,
    string CreatedAt, string? ErrorCode, string? ErrorMessage, string? FallbackFrom, string? RetryOf, bool DryRun)
{
    public static MessageCsvRow From(MessageRow r) => new(
        r.Id, r.Direction, r.Status, r.Type, r.RequestedType, r.Delivery, r.LineId, r.RecipientPhone, r.RecipientEmail,
        r.RecipientName, r.Content, r.Subject, r.LeadId, r.BatchId, Iso(r.ScheduledAt), Iso(r.SentAt), Iso(r.DeliveredAt),
        Iso(r.ReadAt), Iso(r.CreatedAt)!, r.ErrorCode, r.ErrorMessage, r.FallbackFrom, r.RetryOf, r.DryRun);

    private static string? Iso(long? ms) => ms is { } v ? Time.Iso(v) : null;
}

using System.Threading.Channels;
using Dapper;
using LineAgent.Api;
using LineAgent.Availability;
using LineAgent.Channels;
using LineAgent.Leads;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;

namespace LineAgent.Batches;

public sealed record LeadFilterRequest(string? Tag, string? Q);

/// <summary>Body of POST /api/messages/bulk.</summary>
public sealed record BulkRequest
{
    public List<string>? LeadIds { get; init; }
    public LeadFilterRequest? LeadFilter { get; init; }
    public string? Content { get; init; }
    public string? Type { get; init; }
    public string? LineId { get; init; }
    public string? ScheduledAt { get; init; }
    public string? TimeZone { get; init; }
    public string? BatchId { get; init; }
    [System.ComponentModel.Description("Email subject, a template like content (`{{firstName}}`, `{{company|your team}}`); the line's default subject when absent.")]
    public string? Subject { get; init; }
    [System.ComponentModel.Description("Cancel each lead's first message (while scheduled or queued) when that lead replies. Default false; follow-ups always stop on a reply.")]
    public bool? StopOnReply { get; init; }
    [System.ComponentModel.Description("Up to 5 follow-ups per lead (templates like content), each due `after` the lead's previous step was actually sent.")]
    public List<FollowUpRequest?>? FollowUps { get; init; }
    [System.ComponentModel.Description("Hours in each recipient's own time zone; outside them a message waits queued.")]
    public RecipientWindowRequest? RecipientWindow { get; init; }
}

public sealed record BulkEntry(string LeadId, string? MessageId, string Status, string? Type, MessageError? Error, string? SequenceId = null);

/// <summary>What a bulk request becomes before anything is stored: the rows per lead, the rejected leads, the entries to answer.</summary>
public sealed record BulkPlan(
    string BatchId, LineOptions Line, DateTimeOffset Now, List<MessageRow> Rows, List<BulkEntry> Entries,
    List<(string LeadId, string Code, string Message)> Rejections, List<PlannedLead> Leads);

/// <summary>One lead of a plan: its rows (the first message, then its follow-ups) or the reason it cannot be sent.</summary>
public sealed record PlannedLead(string LeadId, IReadOnlyList<MessageRow> Rows, MessageError? Error);

public abstract record BulkPlanOutcome
{
    public sealed record Planned(BulkPlan Plan) : BulkPlanOutcome;
    public sealed record Invalid(IReadOnlyList<FieldProblem> Problems) : BulkPlanOutcome;
    public sealed record NotFound(string Code, string Detail) : BulkPlanOutcome;
}

public sealed record BulkResponse(string BatchId, int Total, int Accepted, int Rejected, IReadOnlyDictionary<string, int> ByStatus,
    IReadOnlyList<BulkEntry> Messages);

public abstract record BulkOutcome
{
    public sealed record Done(BulkResponse Response) : BulkOutcome;
    public sealed record Invalid(IReadOnlyList<FieldProblem> Problems) : BulkOutcome;
    public sealed record NotFound(string Code, string Detail) : BulkOutcome;
}

/// <summary>
/// One template to many leads: each lead gets its own message (or a rejected entry with a reason), all
/// stored in one transaction under one batch id before the answer; sending goes on in the background,
/// one after another per line, paced.
/// </summary>
public sealed class BulkSend(
    LeadStore leads, MessageValidator validator, MessageIntake intake, ChannelRouter channels, AvailabilityService availability,
    MessageLifecycle lifecycle, Suppressions.SuppressionList suppressions, TimeProvider time, ILogger<BulkSend>? log = null)
{
    public const int MaxLeads = 50_000;

    private static string FilterText(LeadFilterRequest f) => string.Join(", ", new[]
    {
        string.IsNullOrWhiteSpace(f.Tag) ? null : $"tag '{Api.Problems.Echo(f.Tag)}'",
        string.IsNullOrWhiteSpace(f.Q) ? null : $"q '{Api.Problems.Echo(f.Q)}'",
    }.OfType<string>());

    /// <summary>
    /// Leads planned at a time: their leads, blue/gray and suppressions are read for them together, and (with more than
    /// this many leads) the writer stores each part while the next is planned (<see cref="StoreWhilePlanningAsync"/>).
    /// Settable for tests, so that a few leads take that path too.
    /// </summary>
    internal int LeadsPerPart { get; set; } = 500;

    /// <summary>
    /// How long the writer's transaction waits for the plan's parts in all before it gives up and the bulk is stored once
    /// it is planned, as a small one (a part takes 10-20 ms here, a 10,000-lead plan about 0.2 s; every other write waits
    /// behind that transaction, so a plan slowed by stalled reads or a busy machine must not hold them long). Settable for tests.
    /// </summary>
    internal TimeSpan PlanWait { get; set; } = TimeSpan.FromSeconds(2);

    private int _storedAfterPlanning;

    /// <summary>Bulks whose writer gave up waiting for a part and which were stored after their plan instead (a test hook).</summary>
    internal int StoredAfterPlanning => Volatile.Read(ref _storedAfterPlanning);

    /// <summary>A test hook: awaited before each part after the first, given the writer's task (to order a test's steps).</summary>
    internal Func<Task, Task>? BeforeNextPart { get; set; }

    public async Task<BulkOutcome> SendAsync(BulkRequest r, CancellationToken ct, string? idempotencyKey = null, string? requestHash = null)
    {
        switch (await PrepareAsync(r, ct))
        {
            case Prepared { LeadIds.Count: var count } p when count > LeadsPerPart:
                return await StoreWhilePlanningAsync(p, idempotencyKey, requestHash, ct);
            case Prepared p:
                await PlanPartsAsync(p, ct);
                return await StoreAsync(p.Plan, idempotencyKey, requestHash, ct);
            case Refused { Outcome: BulkPlanOutcome.Invalid i }:
                return new BulkOutcome.Invalid(i.Problems);
            case Refused { Outcome: BulkPlanOutcome.NotFound n }:
                return new BulkOutcome.NotFound(n.Code, n.Detail);
            default:
                throw new InvalidOperationException();
        }
    }

    /// <summary>
    /// Everything /bulk does before it stores: validation, leads, templates, types, suppressions, rows. The preview
    /// runs exactly this, then simulates the line's pacer instead of storing.
    /// </summary>
    public async Task<BulkPlanOutcome> PlanAsync(BulkRequest r, CancellationToken ct)
    {
        switch (await PrepareAsync(r, ct))
        {
            case Prepared p:
                await PlanPartsAsync(p, ct);
                return new BulkPlanOutcome.Planned(p.Plan);
            case Refused refused:
                return refused.Outcome;
            default:
                throw new InvalidOperationException();
        }
    }

    private abstract record Preparation;

    private sealed record Refused(BulkPlanOutcome Outcome) : Preparation;

    /// <summary>A valid request, with what every part of its plan shares; <see cref="Plan"/> fills as the parts are planned.</summary>
    private sealed record Prepared(
        BulkRequest Request, List<string> LeadIds, LineOptions Line, string Requested, DateTimeOffset? ScheduledAt, SequenceFields Sequence,
        IReadOnlySet<string>? Usable, CompiledTemplate Content, List<CompiledTemplate> FollowUps, CompiledTemplate? Subject, BulkPlan Plan) : Preparation;

    private async Task PlanPartsAsync(Prepared p, CancellationToken ct)
    {
        for (var start = 0; start < p.LeadIds.Count; start += LeadsPerPart)
            await PlanPartAsync(p, start, ct);
    }

    /// <summary>The request's own checks (no lead is read): its problems, an unknown line, and what they read.</summary>
    private sealed record Checked(List<FieldProblem> Problems, Validated.NotFound? NotFound, LineOptions? Line, string Requested,
        DateTimeOffset? ScheduledAt, SequenceFields Sequence);

    /// <summary>
    /// Every problem of the request's fields, an unknown line among them: what a 400 about a body with problems of shape
    /// (a wrong type, an unknown field) also names (<see cref="IFieldValidation"/> on /bulk and /bulk/preview).
    /// </summary>
    internal IReadOnlyList<FieldProblem> FieldProblems(BulkRequest r)
    {
        var c = Check(r);
        return c.NotFound is { } nf && c.Problems.Count == 0 ? [new("lineId", nf.Code, nf.Detail)] : c.Problems;
    }

    /// <summary>What a body with problems of shape is still checked for (<see cref="FieldProblems"/>).</summary>
    internal static IFieldValidation FieldValidation { get; } = new FieldValidation<BulkRequest>(
        (body, http, _) => Task.FromResult(http.RequestServices.GetRequiredService<BulkSend>().FieldProblems(body)),
        new Dictionary<string, string[]>
        {
            ["missing_leads"] = ["leadIds", "leadFilter"],
            ["invalid_schedule"] = ["scheduledAt", "timeZone"],
            [UnavailableChannel.Code] = ["lineId", "type"],
        });

    private Checked Check(BulkRequest r)
    {
        var problems = new List<FieldProblem>();
        Validated.NotFound? notFound = null;
        MessageValidator.ValidateContent(r.Content, problems, required: true);
        // Only content that passed (at most 10,000 characters) is read for placeholders.
        if (r.Content is not null && problems.Count == 0 && Templates.Problem(r.Content, "content") is { } template)
            problems.Add(new("content", "invalid_template", template));
        var hasIds = r.LeadIds is { Count: > 0 };
        if (hasIds == (r.LeadFilter is not null))
            problems.Add(new("leadIds", "missing_leads", "Give either leadIds or leadFilter."));
        else if (r.LeadFilter is { } filter && string.IsNullOrWhiteSpace(filter.Tag) && string.IsNullOrWhiteSpace(filter.Q))
            // A send to every lead is never what an empty or misspelt filter meant.
            problems.Add(new("leadFilter", "missing_leads", "leadFilter needs a tag or q; an empty filter would select every lead."));
        if (r.LeadIds is { Count: > MaxLeads })
            problems.Add(new("leadIds", "too_many", $"At most {MaxLeads:N0} leads per request."));
        if (r.LeadIds?.Any(string.IsNullOrWhiteSpace) == true)
            problems.Add(new("leadIds", "invalid_lead", "leadIds must not contain empty ids."));
        if (r.Subject is { } subject && !MessageValidator.IsOneLineSubject(subject))
            problems.Add(new("subject", "invalid_subject", "subject must be one line of at most 998 printable characters."));
        // A template like content: its placeholders were sent as typed ({{firstName}} in the customer's inbox: black-box probe).
        else if (r.Subject is not null && Templates.Problem(r.Subject, "subject") is { } subjectTemplate)
            problems.Add(new("subject", "invalid_template", subjectTemplate));
        var requested = (r.Type ?? MessageType.Auto).Trim().ToLowerInvariant();
        if (!MessageType.Requestable.Contains(requested))
            problems.Add(new("type", "invalid_type", $"type '{r.Type}' must be one of auto, imessage, sms, email."));
        var scheduledAt = Schedules.Read(r.ScheduledAt, r.TimeZone, problems);
        if (MessageValidator.BatchIdProblem(r.BatchId) is { } batchProblem)
            problems.Add(batchProblem);
        var line = validator.ResolveLine(r.LineId, problems, ref notFound);
        var sequence = SequenceFields.Validate(r.StopOnReply, r.FollowUps, r.RecipientWindow, problems, templates: true);
        if (line is not null && requested != MessageType.Auto && MessageType.Requestable.Contains(requested)
            && channels.Resolve(line, requested) is UnavailableChannel u)
            problems.Add(new("type", UnavailableChannel.Code, $"Line '{line.Id}' cannot send {requested}: {u.Reason}"));
        // An unknown line among other problems is named with them (review: it was dropped from the 400).
        if (problems.Count > 0 && notFound is not null)
            problems.Add(new("lineId", notFound.Code, notFound.Detail));
        return new Checked(problems, notFound, line, requested, scheduledAt, sequence);
    }

    /// <summary>Validation, the lead ids (a filter is searched here), the line's usable types, the compiled templates.</summary>
    private async Task<Preparation> PrepareAsync(BulkRequest r, CancellationToken ct)
    {
        var (problems, notFound, line, requested, scheduledAt, sequence) = Check(r);
        var hasIds = r.LeadIds is { Count: > 0 };
        if (problems.Count > 0)
            return new Refused(new BulkPlanOutcome.Invalid(problems));
        if (notFound is not null)
            return new Refused(new BulkPlanOutcome.NotFound(notFound.Code, notFound.Detail));

        var leadIds = hasIds
            ? r.LeadIds!.Distinct().ToList()
            : (await leads.SearchAsync(r.LeadFilter!.Q, r.LeadFilter.Tag, null, MaxLeads + 1, ct)).Select(l => l.Id).ToList();
        if (leadIds.Count > MaxLeads)
            return new Refused(new BulkPlanOutcome.Invalid([new("leadFilter", "too_many", $"The filter matches more than {MaxLeads:N0} leads.")]));
        if (leadIds.Count == 0)
            // Nothing to store: a 202 would hand out a batch id that names no batch.
            return new Refused(new BulkPlanOutcome.NotFound("lead_not_found", $"No lead matches leadFilter ({FilterText(r.LeadFilter!)}); nothing was stored or sent."));
        if (hasIds && !await leads.AnyOfAsync(leadIds, ct))
            // The same when not one of the ids is a lead (a list from another agent, ids of deleted leads): it answered 202
            // with a batch of rejections only (new-user pass). Some unknown among real ones each get their failed entry.
            return new Refused(new BulkPlanOutcome.NotFound("lead_not_found",
                leadIds.Count == 1 ? $"No lead '{leadIds[0]}'; nothing was stored or sent." : $"None of the {leadIds.Count:N0} leadIds is a lead; nothing was stored or sent."));

        var now = time.GetUtcNow();
        var batchId = r.BatchId ?? Ids.New("batch", now);
        var usable = requested == MessageType.Auto ? await channels.UsableTypesAsync(line!, MessageType.Concrete, ct) : null;
        var plan = new BulkPlan(batchId, line!, now, [], new List<BulkEntry>(leadIds.Count), [], new List<PlannedLead>(leadIds.Count));
        return new Prepared(r, leadIds, line!, requested, scheduledAt, sequence, usable,
            Templates.Compile(r.Content!), sequence.FollowUps.Select(f => Templates.Compile(f.Content)).ToList(),
            r.Subject is null ? null : Templates.Compile(r.Subject), plan);
    }

    /// <summary>
    /// Plans the leads <paramref name="start"/> to <paramref name="start"/> + <see cref="LeadsPerPart"/>: their rows, entries
    /// and rejections are added to the plan, in the order of the lead ids. Every lead is planned on its own, so parts give
    /// the plan one plan of all the leads would.
    /// </summary>
    private async Task PlanPartAsync(Prepared p, int start, CancellationToken ct)
    {
        var (r, line, requested, scheduledAt, sequence, usable, content, followUpTemplates) =
            (p.Request, p.Line, p.Requested, p.ScheduledAt, p.Sequence, p.Usable, p.Content, p.FollowUps);
        var (batchId, now, rows, entries, rejections, planned) = (p.Plan.BatchId, p.Plan.Now, p.Plan.Rows, p.Plan.Entries, p.Plan.Rejections, p.Plan.Leads);
        var leadIds = p.LeadIds.GetRange(start, Math.Min(LeadsPerPart, p.LeadIds.Count - start));
        var found = (await leads.GetManyAsync(leadIds, ct)).ToDictionary(l => l.Id);
        var addresses = found.Values.SelectMany(l => new[] { l.Phone, l.Email }).OfType<string>().ToList();
        // Auto decides by the phone, or by the email only where a lead has no phone (AutoType): only those are looked up.
        var blue = requested == MessageType.Auto
            ? await availability.KnownManyAsync(found.Values.Select(l => l.Phone ?? l.Email).OfType<string>().ToList(), ct)
            : [];
        var suppressed = await suppressions.SuppressedAmongAsync(addresses, ct);
        foreach (var id in leadIds)
        {
            if (!found.TryGetValue(id, out var lead))
            {
                Reject(id, "lead_not_found", $"No lead '{id}'.");
                continue;
            }
            var (text, missing) = content.Render(lead);
            if (text is null)
            {
                Reject(id, "missing_field", $"{{{{{missing}}}}} is empty for this lead and the template gives no fallback ({{{{{missing}|...}}}}).");
                continue;
            }
            var contentProblems = new List<FieldProblem>();
            MessageValidator.ValidateContent(text, contentProblems, required: true);
            if (contentProblems.Count > 0)
            {
                Reject(id, "invalid_content", $"The text for this lead is not sendable: {string.Join(" ", contentProblems.Select(p => p.Detail))}");
                continue;
            }
            var followUpTexts = new List<string>();
            for (var i = 0; i < followUpTemplates.Count; i++)
            {
                var (followUp, missingInFollowUp) = followUpTemplates[i].Render(lead);
                if (followUp is null)
                {
                    Reject(id, "missing_field", $"{{{{{missingInFollowUp}}}}} in followUps[{i}] is empty for this lead and the template gives no fallback.");
                    break;
                }
                var followUpProblems = new List<FieldProblem>();
                MessageValidator.ValidateContent(followUp, followUpProblems, required: true);
                if (followUpProblems.Count > 0)
                {
                    Reject(id, "invalid_content", $"followUps[{i}] for this lead is not sendable: {string.Join(" ", followUpProblems.Select(p => p.Detail))}");
                    break;
                }
                followUpTexts.Add(followUp);
            }
            if (followUpTexts.Count < sequence.FollowUps.Count)
                continue;
            var type = requested == MessageType.Auto ? AutoType(line!, lead, blue, usable!) : requested;
            if (type is null || (type is MessageType.Sms && lead.Phone is null) || (type is MessageType.Email && lead.Email is null)
                || (type is MessageType.IMessage && lead.Phone is null && lead.Email is null))
            {
                Reject(id, "missing_recipient", type is null
                    ? $"Line '{line!.Id}' has no channel for this lead's addresses."
                    : $"The lead has no {(type == MessageType.Email ? "email" : "phone")} for {type}.");
                continue;
            }
            string? subject = null;
            if (type == MessageType.Email)
            {
                var (rendered, missingInSubject) = p.Subject?.Render(lead) ?? (line!.Email.DefaultSubject, null);
                if (missingInSubject is not null)
                {
                    Reject(id, "missing_field", $"{{{{{missingInSubject}}}}} in subject is empty for this lead and the template gives no fallback.");
                    continue;
                }
                if (rendered is { } one && !MessageValidator.IsOneLineSubject(one))
                {
                    Reject(id, "invalid_subject", "The subject for this lead is not one line of at most 998 printable characters (a field it takes holds a line break, or is long).");
                    continue;
                }
                subject = rendered;
            }
            var draft = new MessageDraft(text, type, requested, line!, lead.Id, batchId,
                type == MessageType.Email ? null : lead.Phone, lead.Email, lead.FullName, scheduledAt, string.IsNullOrWhiteSpace(r.TimeZone) ? null : r.TimeZone.Trim(),
                subject,
                sequence, sequence.RecipientZoneFor(line!, type, lead.Phone, () => RecipientZones.LeadZone(lead.FieldMap())));
            if (intake.NeverInWindow(draft, now) is { } never)
            {
                Reject(id, "window_never_open", never);
                continue;
            }
            var to = type == MessageType.Email ? lead.Email : lead.Phone ?? lead.Email;
            var leadRows = to is not null && suppressed.Contains(to) ? [intake.NewRow(draft, now)] : intake.NewRows(draft, now, followUpTexts);
            var row = leadRows[0];
            if (to is not null && suppressed.Contains(to))
            {
                row.Status = MessageStatus.Failed;
                row.ErrorCode = FailureCodes.Suppressed;
                row.ErrorMessage = $"{to} opted out (suppression list); nothing was sent.";
            }
            rows.AddRange(leadRows);
            var error = row.ErrorCode is null ? null : new MessageError(row.ErrorCode, row.ErrorMessage);
            entries.Add(new BulkEntry(id, row.Id, row.Status, row.Type, error, row.SequenceId));
            planned.Add(new PlannedLead(id, leadRows, error));
        }

        void Reject(string leadId, string code, string message)
        {
            rejections.Add((leadId, code, message));
            entries.Add(new BulkEntry(leadId, null, MessageStatus.Failed, null, new MessageError(code, message)));
            planned.Add(new PlannedLead(leadId, [], new MessageError(code, message)));
        }
    }

    /// <summary>The plan's rows, rejections and the answer (for its Idempotency-Key) in one transaction.</summary>
    private async Task<BulkOutcome> StoreAsync(BulkPlan plan, string? idempotencyKey, string? requestHash, CancellationToken ct)
    {
        var response = Response(plan);
        await lifecycle.AcceptAsync(plan.Rows, s => StoreTheRest(s, plan, response, idempotencyKey, requestHash), ct);
        return new BulkOutcome.Done(response);
    }

    /// <summary>
    /// A bulk of more leads than one part: the writer's transaction takes each part's rows while the next part is planned
    /// (both cores at work: one after the other, a 10,000-lead bulk took the plan's time plus the writer's), then the
    /// rejections and the answer, and commits; the bulk is answered after the commit, as any. The writer waits on the plan
    /// meanwhile, so what the plan awaits must not need the writer: it only reads (leads, blue/gray, suppressions), and the
    /// lead filter's search is done before (<see cref="PrepareAsync"/>). A plan that throws abandons the transaction: nothing
    /// of it is stored.
    /// </summary>
    private async Task<BulkOutcome> StoreWhilePlanningAsync(Prepared p, string? idempotencyKey, string? requestHash, CancellationToken ct)
    {
        // Synchronous continuations: a part written wakes the waiting writer at once (see DbWriter's queue).
        var parts = Channel.CreateUnbounded<IReadOnlyList<MessageRow>>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });
        BulkResponse? response = null;
        // Runs on the writer's thread once the last part is in, so after the response below is made (the channel's completion orders them).
        var stored = lifecycle.AcceptAsync(parts.Reader, PlanWait, s => StoreTheRest(s, p.Plan, response!, idempotencyKey, requestHash), ct);
        bool WriterGaveUp() => stored.IsFaulted && stored.Exception!.InnerException is MessageLifecycle.PartsTooSlowException;
        try
        {
            for (var start = 0; start < p.LeadIds.Count; start += LeadsPerPart)
            {
                // A writer that failed or was cancelled needs no more parts: its error is the answer. One that gave up
                // waiting stored nothing: the plan goes on, and is stored once it is done.
                if (stored.IsCompleted && !WriterGaveUp())
                    break;
                if (start > 0 && BeforeNextPart is { } hook)
                    await hook(stored);
                var from = p.Plan.Rows.Count;
                await PlanPartAsync(p, start, ct);
                if (!stored.IsCompleted)
                    parts.Writer.TryWrite(p.Plan.Rows.GetRange(from, p.Plan.Rows.Count - from));
            }
            response = Response(p.Plan);
        }
        catch (Exception e)
        {
            parts.Writer.TryComplete(new PlanAbandonedException(e));
            try
            {
                await stored;
            }
            catch (Exception)
            {
                // Rolled back (or never started): the plan's own error is the answer.
            }
            throw;
        }
        parts.Writer.TryComplete();
        try
        {
            await stored;
        }
        catch (MessageLifecycle.PartsTooSlowException e)
        {
            log?.LogWarning("Bulk {BatchId} ({Leads} leads): {Reason} It is stored now that it is planned, in one transaction.",
                p.Plan.BatchId, p.LeadIds.Count, e.Message);
            Interlocked.Increment(ref _storedAfterPlanning);
            return await StoreAsync(p.Plan, idempotencyKey, requestHash, ct);
        }
        return new BulkOutcome.Done(response);
    }

    /// <summary>Ends the writer's transaction of a bulk whose plan failed: nothing of it is stored.</summary>
    private sealed class PlanAbandonedException(Exception inner) : Exception("The bulk's plan failed; nothing of it was stored.", inner);

    /// <summary>The answer: the entries, and their counts by status as GET /api/batches/{id} counts them.</summary>
    private static BulkResponse Response(BulkPlan plan)
    {
        var entries = plan.Entries;
        // A lead refused before any message was made is `rejected` there (its entry says `failed`, as API.md has it), a
        // suppressed lead's stored message `failed`: accepted (stored) and not rejected, as the batch counts it (review: the
        // answer counted that message rejected, and GET /api/batches/{id} did not: two numbers for one batch).
        // Per lead, as the request names them and `messages` lists them: a lead's follow-ups are not counted here, while
        // GET /api/batches/{id} counts every stored message (README says both; a client checks total against its leadIds:
        // review).
        var rejected = entries.Count(x => x.MessageId is null);
        return new BulkResponse(plan.BatchId, entries.Count, entries.Count - rejected, rejected,
            entries.GroupBy(e => e.MessageId is null ? "rejected" : e.Status).ToDictionary(g => g.Key, g => g.Count()), entries);
    }

    /// <summary>After the rows, in their transaction: the rejected leads, and the answer for the request's Idempotency-Key.</summary>
    private static void StoreTheRest(WriteScope s, BulkPlan plan, BulkResponse response, string? idempotencyKey, string? requestHash)
    {
        var nowMs = Time.ToMs(plan.Now);
        foreach (var x in plan.Rejections)
            s.Connection.Execute("INSERT INTO batch_rejections (batch_id, lead_id, code, message, created_at) VALUES (@B, @L, @C, @M, @T)",
                new { B = plan.BatchId, L = x.LeadId, C = x.Code, M = x.Message, T = nowMs }, s.Transaction);
        if (idempotencyKey is not null)
            IdempotencyStore.InsertAnswered(s.Connection, s.Transaction, idempotencyKey, requestHash!, 202,
                System.Text.Json.JsonSerializer.Serialize(response, AgentJson.Options), nowMs);
    }

    /// <summary>
    /// A phone gets iMessage unless known unavailable, then SMS; an email-only lead gets email (iMessage when known blue).
    /// Types whose channel has a lasting problem (<paramref name="usable"/>) are skipped, as for one message; when that
    /// leaves none, the first that a channel carries, whose send then fails with its own reason.
    /// </summary>
    private string? AutoType(LineOptions line, LeadRow lead, Dictionary<string, string> blue, IReadOnlySet<string> usable) =>
        AutoType(line, lead, blue, usable.Contains) ?? AutoType(line, lead, blue, t => channels.Resolve(line, t) is not UnavailableChannel);

    private static string? AutoType(LineOptions line, LeadRow lead, Dictionary<string, string> blue, Func<string, bool> carries)
    {
        if (lead.Phone is not null)
        {
            if (line.IMessage.Enabled && carries(MessageType.IMessage) && blue.GetValueOrDefault(lead.Phone) != IMessageAvailability.Unavailable)
                return MessageType.IMessage;
            if (carries(MessageType.Sms))
                return MessageType.Sms;
        }
        if (lead.Email is not null)
        {
            if (lead.Phone is null && line.IMessage.Enabled && carries(MessageType.IMessage) && blue.GetValueOrDefault(lead.Email) == IMessageAvailability.Available)
                return MessageType.IMessage;
            if (carries(MessageType.Email))
                return MessageType.Email;
        }
        return null;
    }
}

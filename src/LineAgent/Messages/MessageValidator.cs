using System.Globalization;
using System.Text;
using LineAgent.Api;
using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Messages;

/// <summary>A request that passed validation, ready to store.</summary>
public sealed record MessageDraft(
    string Content, string Type, string RequestedType, LineOptions Line, string? LeadId, string? BatchId,
    string? RecipientPhone, string? RecipientEmail, string? RecipientName, DateTimeOffset? ScheduledAt,
    string? TimeZone, string? Subject, SequenceFields? Sequence = null, Scheduling.RecipientZone? RecipientZone = null);

public abstract record Validated
{
    public sealed record Ok(MessageDraft Draft) : Validated;
    public sealed record Invalid(IReadOnlyList<FieldProblem> Problems) : Validated;
    public sealed record NotFound(string Code, string Detail) : Validated;
}

/// <summary>Checks a send request field by field and names every problem in one answer.</summary>
public sealed class MessageValidator(IOptions<AgentOptions> agent, LineRegistry lines, ILeadLookup leads, ITypeRouter router, ChannelRouter channels)
{
    public const int MaxContentLength = 10_000;

    /// <param name="fieldsOnly">Only the fields' own checks: no routing (which may wait for a channel's health check). Ok is
    /// then an empty <see cref="Validated.Invalid"/>.</param>
    public async Task<Validated> ValidateAsync(SendMessageRequest r, CancellationToken ct, bool fieldsOnly = false)
    {
        var problems = new List<FieldProblem>();
        Validated.NotFound? notFound = null;

        ValidateContent(r.Content, problems, required: true);

        var requested = (r.Type ?? MessageType.Auto).Trim().ToLowerInvariant();
        if (!MessageType.Requestable.Contains(requested))
            problems.Add(new("type", "invalid_type", $"type '{r.Type}' must be one of auto, imessage, sms, email."));

        LeadContact? lead = null;
        if (!string.IsNullOrWhiteSpace(r.LeadId))
        {
            lead = await leads.FindAsync(r.LeadId, ct);
            if (lead is null)
                notFound = new("lead_not_found", $"No lead '{r.LeadId}'.");
        }

        string? phone = null, email = null;
        var phoneInput = NullIfBlank(r.RecipientPhone) ?? lead?.Phone;
        var emailInput = NullIfBlank(r.RecipientEmail) ?? lead?.Email;
        if (phoneInput is not null)
        {
            if (Recipients.TryNormalizePhone(phoneInput, agent.Value.DefaultRegion, out var e164, out var why)) phone = e164;
            else problems.Add(new("recipientPhone", "invalid_recipient", $"recipientPhone {why}."));
        }
        if (emailInput is not null)
        {
            if (Recipients.TryNormalizeEmail(emailInput, out var address, out var why)) email = address;
            else problems.Add(new("recipientEmail", "invalid_recipient", $"recipientEmail {why}."));
        }
        // An unknown lead is a 404 lead_not_found: the recipient it leaves missing follows from it and is no second problem.
        var leadMissing = notFound is not null;
        if (!leadMissing && phoneInput is null && emailInput is null)
            problems.Add(new("recipientPhone", "missing_recipient", "Give recipientPhone or recipientEmail (or a leadId that has one)."));
        else if (!leadMissing && MessageType.Requestable.Contains(requested))
        {
            if (requested == MessageType.Sms && phoneInput is null)
                problems.Add(new("recipientPhone", "missing_recipient", "type sms needs recipientPhone."));
            if (requested == MessageType.Email && emailInput is null)
                problems.Add(new("recipientEmail", "missing_recipient", "type email needs recipientEmail."));
        }

        if (r.RecipientName is { Length: > 200 })
            problems.Add(new("recipientName", "invalid_name", "recipientName is longer than 200 characters."));
        if (r.RecipientName?.Contains('\0') == true)
            problems.Add(new("recipientName", "invalid_name", "recipientName contains a NUL character."));
        else if (r.RecipientName?.Trim().Any(char.IsControl) == true)
            problems.Add(new("recipientName", "invalid_name", "recipientName must be one line of printable characters (no line breaks or tabs inside it)."));
        if (BatchIdProblem(r.BatchId) is { } batchProblem)
            problems.Add(batchProblem);
        ValidateSubject(r.Subject, problems);

        var scheduledAt = Schedules.Read(r.ScheduledAt, r.TimeZone, problems);

        var line = ResolveLine(r.LineId, problems, ref notFound);
        // To a lead, the texts are templates as on /bulk: {{firstName}} is filled from the lead, not sent as typed (probe K).
        var sequence = SequenceFields.Validate(r.StopOnReply, r.FollowUps, r.RecipientWindow, problems, templates: lead?.Lead is not null);
        var content = r.Content;
        var subject = r.Subject;
        if (lead?.Lead is { } leadRow)
        {
            if (content is not null && !problems.Any(p => p.Field == "content"))
            {
                content = Batches.Templates.RenderForLead(content, "content", leadRow, problems);
                if (content is not null && !ReferenceEquals(content, r.Content))
                    ValidateContent(content, problems, required: true);
            }
            // What the lead's values make of them is checked as the texts themselves are (probe L: a 12,000-character
            // follow-up and a 2,000-character subject with line breaks were stored; /bulk refused both).
            // The subject only where the send may be an email (the rest drop it): a phone-only lead's SMS was refused for it.
            if (subject is not null && !problems.Any(p => p.Field == "subject")
                && (requested == MessageType.Email || (requested == MessageType.Auto && emailInput is not null)))
            {
                subject = Batches.Templates.RenderForLead(subject, "subject", leadRow, problems);
                if (subject is not null && !ReferenceEquals(subject, r.Subject))
                    ValidateSubject(subject, problems, " (as filled from the lead)");
            }
            if (!problems.Any(p => p.Field.StartsWith("followUps", StringComparison.Ordinal)))
            {
                var steps = sequence.FollowUps.ToList();
                for (var i = 0; i < steps.Count; i++)
                {
                    var field = $"followUps[{i}].content";
                    if (Batches.Templates.RenderForLead(steps[i].Content, field, leadRow, problems) is not { } text)
                        continue;
                    if (!ReferenceEquals(text, steps[i].Content))
                    {
                        var own = new List<FieldProblem>();
                        ValidateContent(text, own, required: true);
                        problems.AddRange(own.Select(p => p with { Field = field, Detail = $"followUps[{i}] as filled from the lead: {p.Detail}" }));
                    }
                    steps[i] = (steps[i].After, text);
                }
                sequence = sequence with { FollowUps = steps };
            }
        }

        if (problems.Count > 0)
        {
            if (notFound is not null)
                problems.Add(new(notFound.Code == "line_not_found" ? "lineId" : "leadId", notFound.Code, notFound.Detail));
            return new Validated.Invalid(problems);
        }
        if (notFound is not null)
            return notFound;
        if (fieldsOnly)
            return new Validated.Invalid([]);

        var type = requested == MessageType.Auto
            ? await router.ResolveAutoAsync(line!, phone, email, ct)
            : requested;
        if (channels.Resolve(line!, type) is UnavailableChannel unavailable)
            return new Validated.Invalid([new("type", UnavailableChannel.Code,
                $"Line '{line!.Id}' cannot send {type}{(requested == MessageType.Auto ? " (chosen for auto)" : "")}: {unavailable.Reason}")]);
        // imessage with both addresses goes to the phone; the email stays for the record.
        return new Validated.Ok(new MessageDraft(
            content!, type, requested, line!, lead?.Id, r.BatchId, phone, email,
            NullIfBlank(r.RecipientName) ?? lead?.Name, scheduledAt, NullIfBlank(r.TimeZone),
            type == MessageType.Email ? NullIfBlank(subject) ?? line!.Email.DefaultSubject : null,
            sequence, sequence.RecipientZoneFor(line!, type, phone, lead?.TimeZone)));
    }

    /// <summary>
    /// A batch id is a path segment of /api/batches/{id}: 1-100 printable characters, none of / \ ? # (a batch stored
    /// under "a/b" could never be read or cancelled), and not "." or ".." (a client or proxy removes such a segment: the
    /// batch answered 404 to every GET and cancel, black-box probe).
    /// </summary>
    public static FieldProblem? BatchIdProblem(string? batchId) =>
        batchId is { } b && (b.Length is 0 or > 100 || b is "." or ".." || b.Any(c => char.IsControl(c) || c is '/' or '\\' or '?' or '#'))
            ? new("batchId", "invalid_batch", "batchId must be 1-100 printable characters, without / \\ ? or #, and not \".\" or \"..\".")
            : null;

    /// <summary>
    /// An email subject: one line of at most 998 characters (RFC 5322's line length), printable but for tabs (probe N: a C1
    /// control such as U+0085, a next line, and U+2028 were taken, while recipientName refused them).
    /// </summary>
    public static void ValidateSubject(string? subject, List<FieldProblem> problems, string filled = "")
    {
        if (subject is { } s && !IsOneLineSubject(s))
            problems.Add(new("subject", "invalid_subject", $"subject must be one line of at most 998 printable characters{filled}."));
    }

    /// <summary>See <see cref="ValidateSubject"/>; also for a bulk's subject and each lead's rendering of it.</summary>
    public static bool IsOneLineSubject(string subject) =>
        subject.Length <= 998 && !subject.Any(c => c is '\u2028' or '\u2029' || (char.IsControl(c) && c != '\t'));

    public static void ValidateContent(string? content, List<FieldProblem> problems, bool required)
    {
        if (content is null || content.Length == 0)
        {
            if (required) problems.Add(new("content", "missing_content", "content is required (1-10,000 characters)."));
            return;
        }
        // One pass over the runes for both questions (LINQ over the rune enumerator boxed it, twice per send: allocation trace).
        var length = 0;
        var visible = false;
        foreach (var r in content.EnumerateRunes())
        {
            length++;
            visible = visible || (!Rune.IsWhiteSpace(r) && Rune.GetUnicodeCategory(r) is not (UnicodeCategory.Format or UnicodeCategory.Control));
        }
        if (string.IsNullOrWhiteSpace(content))
            problems.Add(new("content", "invalid_content", "content is only whitespace."));
        else if (!visible)
            // Zero-width spaces, joiners and BOMs only: the recipient would get a message that shows nothing.
            problems.Add(new("content", "invalid_content", "content has no visible character (only zero-width or format characters)."));
        // Line breaks of every kind pass: CR, LF, VT (FileMaker's and PowerPoint's), FF, NEL; and tabs.
        if (content.Any(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t' or '\v' or '\f' or '\u0085' or '\0')))
            problems.Add(new("content", "invalid_content", "content contains a control character other than line breaks and tabs (ESC, BEL, ...)."));
        if (length > MaxContentLength)
            problems.Add(new("content", "invalid_content", $"content has {length} characters; the limit is {MaxContentLength:N0}."));
        if (content.Contains('\0'))
            problems.Add(new("content", "invalid_content", "content contains a NUL character."));
        if (!IsWellFormed(content))
            problems.Add(new("content", "invalid_content", "content contains an unpaired surrogate (not valid Unicode)."));
    }

    internal LineOptions? ResolveLine(string? lineId, List<FieldProblem> problems, ref Validated.NotFound? notFound)
    {
        if (!string.IsNullOrWhiteSpace(lineId))
        {
            var line = lines.Find(lineId);
            if (line is null)
            {
                const string detail = "on this agent (see GET /api/lines).";
                // With an unknown lead already found, both are named in a 400 (review: the line was dropped).
                if (notFound is null)
                    notFound = new("line_not_found", $"No line '{lineId}' {detail}");
                else
                    problems.Add(new("lineId", "line_not_found", $"No line '{lineId}' {detail}"));
                return null;
            }
            if (!lines.IsActive(line.Id))
                problems.Add(new("lineId", "line_inactive", $"Line '{line.Id}' is paused; resume it with PATCH /api/lines/{line.Id}."));
            return line;
        }
        var active = lines.ActiveLines;
        if (active.Count == 1)
            return active[0];
        problems.Add(active.Count == 0
            ? new("lineId", "line_inactive",
                $"Every line of this agent is paused; resume one with PATCH /api/lines/<id> {{\"active\":true}} ({string.Join(", ", lines.All.Select(l => l.Id))}).")
            : new("lineId", "missing_line", $"This agent has {active.Count} active lines; give lineId ({string.Join(", ", active.Select(l => l.Id))})."));
        return null;
    }

    private static bool IsWellFormed(string s)
    {
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetByteCount(s);
            return true;
        }
        catch (EncoderFallbackException)
        {
            return false;
        }
    }

    private static string? NullIfBlank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}

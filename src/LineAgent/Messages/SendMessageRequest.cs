namespace LineAgent.Messages;

/// <summary>Body of POST /api/messages (names follow the product this agent replaces).</summary>
public sealed record SendMessageRequest
{
    public string? Content { get; init; }
    /// <summary>imessage, sms, email, or auto (default): pick by availability.</summary>
    public string? Type { get; init; }
    public string? LineId { get; init; }
    public string? RecipientPhone { get; init; }
    public string? RecipientEmail { get; init; }
    public string? RecipientName { get; init; }
    /// <summary>ISO 8601 with offset or Z; a local time if timeZone is given. Absent or past = now.</summary>
    public string? ScheduledAt { get; init; }
    /// <summary>IANA zone for a local scheduledAt, e.g. America/New_York.</summary>
    public string? TimeZone { get; init; }
    public string? LeadId { get; init; }
    public string? BatchId { get; init; }
    /// <summary>Email only; else the line's default subject.</summary>
    public string? Subject { get; init; }
    [System.ComponentModel.Description("Cancel this message (while scheduled or queued) when the recipient replies after it was created. Default false; follow-ups always stop on a reply.")]
    public bool? StopOnReply { get; init; }
    [System.ComponentModel.Description("Up to 5 follow-ups, each due `after` the previous step was actually sent; a reply, a failure or a cancel stops the rest.")]
    public List<FollowUpRequest?>? FollowUps { get; init; }
    [System.ComponentModel.Description("Hours in the recipient's own time zone (from the number, else the lead's fields.timeZone, else the line's); outside them the message waits queued.")]
    public RecipientWindowRequest? RecipientWindow { get; init; }
}

/// <summary>Body of PATCH /api/messages/{id}.</summary>
public sealed record UpdateMessageRequest
{
    public string? Content { get; init; }
    public string? ScheduledAt { get; init; }
    public string? TimeZone { get; init; }
}

/// <summary>What a lead contributes to a message.</summary>
/// <param name="Lead">The whole lead, for the placeholders of a send to it.</param>
public sealed record LeadContact(string Id, string? Phone, string? Email, string? Name, string? TimeZone = null, Leads.LeadRow? Lead = null);

public interface ILeadLookup
{
    Task<LeadContact?> FindAsync(string leadId, CancellationToken ct);
}

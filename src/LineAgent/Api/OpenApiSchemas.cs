using LineAgent.Availability;
using LineAgent.Batches;
using LineAgent.Channels;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using LineAgent.Suppressions;
using LineAgent.Webhooks;

namespace LineAgent.Api;

/// <summary>
/// The body of every 4xx and 5xx answer as the OpenAPI document shows it: RFC 9457 problem details with the
/// agent's extensions. Written by <see cref="Problems"/>, the exception handler and Kestrel's refusals.
/// </summary>
public sealed record ProblemBody(
    string Type,
    string Title,
    int Status,
    string? Detail,
    string? Instance,
    string Code,
    IReadOnlyList<FieldProblem>? Problems,
    IReadOnlyDictionary<string, string[]>? Errors,
    string? MessageId,
    MessageDto? Message,
    string? MessageStatus,
    string? TraceId)
{
    public const string SchemaId = "Problem";
}

/// <summary>
/// What the document says about fields that the CLR types alone cannot: the values a string field takes, the
/// format of a string that carries a time, which fields of a request body the agent requires, and what a field
/// means. Keyed by the declaring type and the C# property name (nameof), so a rename is a compile error here.
/// </summary>
internal static class OpenApiSchemas
{
    private static readonly string[] Directions = ["inbound", "outbound"];
    private static readonly string[] Deliveries = [Messages.Delivery.Unknown, Messages.Delivery.Delivered, Messages.Delivery.Read, Messages.Delivery.NotDelivered];
    private static readonly string[] HealthStates = [ChannelHealth.Ok, ChannelHealth.Degraded, ChannelHealth.Unavailable];
    private static readonly string[] ZoneSources = [RecipientZones.FromNumber, RecipientZones.FromLead, RecipientZones.FromLine];

    /// <summary>The values a string property (or the items of a string-array property) takes.</summary>
    public static readonly Dictionary<(Type, string), string[]> Enums = new()
    {
        [Key<MessageDto>(nameof(MessageDto.Direction))] = Directions,
        [Key<MessageDto>(nameof(MessageDto.Type))] = MessageType.Concrete,
        [Key<MessageDto>(nameof(MessageDto.RequestedType))] = MessageType.Requestable,
        [Key<MessageDto>(nameof(MessageDto.Status))] = MessageStatus.All,
        [Key<MessageDto>(nameof(MessageDto.Delivery))] = Deliveries,
        [Key<SendMessageRequest>(nameof(SendMessageRequest.Type))] = MessageType.Requestable,
        [Key<BulkRequest>(nameof(BulkRequest.Type))] = MessageType.Requestable,
        [Key<BulkEntry>(nameof(BulkEntry.Type))] = MessageType.Concrete,
        [Key<WebhookRequest>(nameof(WebhookRequest.Events))] = WebhookEvents.All,
        [Key<WebhookDto>(nameof(WebhookDto.Events))] = WebhookEvents.All,
        [Key<DeliveryDto>(nameof(DeliveryDto.Type))] = WebhookEvents.All,
        [Key<DeliveryDto>(nameof(DeliveryDto.Status))] = ["pending", "delivered", "failed"],
        [Key<AvailabilityResult>(nameof(AvailabilityResult.IMessage))] =
            [IMessageAvailability.Available, IMessageAvailability.Unavailable, IMessageAvailability.Unknown],
        [Key<AvailabilityResult>(nameof(AvailabilityResult.SendAs))] = MessageType.Concrete,
        [Key<AvailabilityResult>(nameof(AvailabilityResult.Source))] =
            [AvailabilitySource.History, AvailabilitySource.MessagesDb, AvailabilitySource.Probe, AvailabilitySource.None],
        [Key<ChannelHealthDto>(nameof(ChannelHealthDto.Type))] = MessageType.Concrete,
        [Key<ChannelHealthDto>(nameof(ChannelHealthDto.State))] = HealthStates,
        [Key<LineDto>(nameof(LineDto.SmsVia))] = [SmsLineOptions.ViaMessages, SmsLineOptions.ViaTwilio],
        [Key<SuppressionDto>(nameof(SuppressionDto.Source))] =
            [SuppressionList.Sources.Api, SuppressionList.Sources.Reply, SuppressionList.Sources.Twilio],
        [Key<StorageState>(nameof(StorageState.State))] = [StorageState.Ok, StorageState.Full, StorageState.ReadOnly, StorageState.Error],
        [Key<MessageDto>(nameof(MessageDto.RecipientTimeZoneSource))] = ZoneSources,
        [Key<BulkPreviewEntry>(nameof(BulkPreviewEntry.RecipientTimeZoneSource))] = ZoneSources,
        [Key<BulkPreviewEntry>(nameof(BulkPreviewEntry.Type))] = MessageType.Concrete,
        [Key<Sequences.SequenceDto>(nameof(Sequences.SequenceDto.Status))] = ["active", "completed", "stopped"],
    };

    /// <summary>String properties that carry a time (inputs: ISO 8601 with an offset, or a local time with timeZone).</summary>
    public static readonly Dictionary<(Type, string), string> Formats = new()
    {
        [Key<SendMessageRequest>(nameof(SendMessageRequest.ScheduledAt))] = "date-time",
        [Key<UpdateMessageRequest>(nameof(UpdateMessageRequest.ScheduledAt))] = "date-time",
        [Key<BulkRequest>(nameof(BulkRequest.ScheduledAt))] = "date-time",
    };

    /// <summary>
    /// What a request body needs. A request type that is not listed requires nothing: its fields are optional,
    /// and the agent answers 400 naming the field when a combination is missing (a lead needs a phone or an email).
    /// </summary>
    public static readonly Dictionary<Type, string[]> RequiredInRequests = new()
    {
        [typeof(SendMessageRequest)] = [nameof(SendMessageRequest.Content)],
        [typeof(BulkRequest)] = [nameof(BulkRequest.Content)],
        [typeof(WebhookRequest)] = [nameof(WebhookRequest.Url)],
        [typeof(AddSuppressionRequest)] = [nameof(AddSuppressionRequest.Address)],
        [typeof(AvailabilityRequest)] = [nameof(AvailabilityRequest.Addresses)],
        [typeof(UpdateLineRequest)] = [nameof(UpdateLineRequest.Active)],
        // Inside followUps and recipientWindow: the agent answers 400 naming followUps[i].after / recipientWindow without them.
        [typeof(FollowUpRequest)] = [nameof(FollowUpRequest.After), nameof(FollowUpRequest.Content)],
        [typeof(RecipientWindowRequest)] = [nameof(RecipientWindowRequest.From), nameof(RecipientWindowRequest.To)],
    };

    /// <summary>Response types whose fields are not all always there (the rest have every field, null or not).</summary>
    public static readonly Dictionary<Type, string[]> RequiredInResponses = new()
    {
        [typeof(ProblemBody)] = [nameof(ProblemBody.Type), nameof(ProblemBody.Title), nameof(ProblemBody.Status), nameof(ProblemBody.Code)],
    };

    public static readonly Dictionary<(Type, string), string> Descriptions = new()
    {
        [Key<SendMessageRequest>(nameof(SendMessageRequest.Content))] = "The text, 1-10,000 characters. With leadId a template as on /bulk (`{{firstName}}`, `{{company|your team}}`), filled from the lead.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.Type))] = "`auto` (default) picks by availability: iMessage where the number has it, else SMS; email for an email address.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.LineId))] = "Optional when the agent has one active line.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.RecipientPhone))] = "E.164, or a national number read in Agent:DefaultRegion.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.ScheduledAt))] =
            "When to send: ISO 8601 with an offset or Z (or a local time with `timeZone`). Absent or past: now.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.TimeZone))] = "IANA zone of a local `scheduledAt`, e.g. America/New_York.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.LeadId))] = "The recipient and the name default to the lead's.",
        [Key<SendMessageRequest>(nameof(SendMessageRequest.Subject))] = "Email only; else the line's default subject.",
        [Key<Messages.UpdateMessageRequest>(nameof(Messages.UpdateMessageRequest.Content))] =
            "The new text. For a message to a lead (a bulk's, or a send with leadId) a template, filled from that lead.",
        [Key<BulkRequest>(nameof(BulkRequest.Content))] = "A template: `{{firstName}}`, `{{fields.plan}}`, `{{company|your team}}` (a fallback after `|`).",
        [Key<BulkRequest>(nameof(BulkRequest.LeadIds))] = "The leads to send to (or `leadFilter`).",
        [Key<BulkRequest>(nameof(BulkRequest.BatchId))] = "Generated when absent.",
        [Key<WebhookRequest>(nameof(WebhookRequest.Events))] = "The events to receive; none or empty = all.",
        [Key<WebhookRequest>(nameof(WebhookRequest.Secret))] = "`whsec_` + base64 of at least 16 bytes; generated (and shown once) when absent.",
        [Key<MessageDto>(nameof(MessageDto.NotBefore))] = "A message held by its line's pacing goes out at or after this time.",
        [Key<MessageDto>(nameof(MessageDto.Error))] = "Why the message failed or was cancelled, or, on a sent message whose delivery is not_delivered, why it was not delivered.",
        [Key<PacingDto>(nameof(PacingDto.Enabled))] =
            "Whether pacing holds this line's sends now: false when Lines:N:Pacing:Enabled is false, and in dry run unless Agent:DryRunPacing (see `note`).",
        [Key<Scheduling.LineUsage>(nameof(Scheduling.LineUsage.HeldUntil))] =
            "Until when pacing holds the line's next send (its gap with its jitter, a cap, its window); a recipient's own hours may hold one message longer. Null when a send may go now.",
        [Key<Scheduling.LineUsage>(nameof(Scheduling.LineUsage.HeldBecause))] = "The limit that holds the line's next send (`heldUntil`), worded as in the messages' `paced` events.",
        [Key<Scheduling.LineUsage>(nameof(Scheduling.LineUsage.NewConversationsHeldUntil))] =
            "Until when the day's cap of new conversations holds a first message to an address, when later than `heldUntil`; else null.",
    };

    /// <summary>The C# property (not its JSON name: <c>AvailabilityResult.IMessage</c> is written as <c>imessage</c>).</summary>
    private static (Type, string) Key<T>(string property) => (typeof(T), property);
}

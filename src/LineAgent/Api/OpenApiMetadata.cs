using LineAgent.Messages;

namespace LineAgent.Api;

/// <summary>How a query parameter is typed in the OpenAPI document.</summary>
public enum QueryType
{
    String,
    Integer,
    Boolean,
    /// <summary>An ISO 8601 time (format date-time).</summary>
    DateTime,
    /// <summary>One of <see cref="QueryParameter.Values"/>.</summary>
    Enum,
    /// <summary>Several of <see cref="QueryParameter.Values"/>, comma-separated (or the parameter repeated).</summary>
    EnumList,
}

/// <summary>
/// A query parameter as the OpenAPI document shows it. Handlers that read the query string by hand
/// (<see cref="MessageFilter.Parse"/>, retry's <c>force</c>) declare theirs at MapGet with
/// <see cref="OpenApiMetadata.WithQueryParameters{TBuilder}"/>; a declared parameter replaces the one the
/// framework inferred from a handler argument of the same name.
/// </summary>
public sealed record QueryParameter(string Name, string Description)
{
    public QueryType Type { get; init; } = QueryType.String;
    public IReadOnlyList<string>? Values { get; init; }
    public int? Minimum { get; init; }
    public int? Maximum { get; init; }
    public int? MaxLength { get; init; }
    public string? Default { get; init; }
    public bool Required { get; init; }

    /// <summary>
    /// For <see cref="QueryType.Enum"/> and <see cref="QueryType.EnumList"/>: the values become this named component,
    /// so a generated client gets a type with a name (`MessageStatusFilter.Sent`), not `Anonymous2`.
    /// </summary>
    public string? SchemaName { get; init; }
}

/// <summary>Endpoint metadata: the query parameters of <see cref="QueryParameter"/>.</summary>
public sealed record QueryParametersMetadata(IReadOnlyList<QueryParameter> Parameters);

/// <summary>Endpoint metadata: the route honours <c>Idempotency-Key</c> (header, 400 on a bad key, 409 on reuse with another body).</summary>
public sealed class IdempotencyKeyMetadata
{
    public static readonly IdempotencyKeyMetadata Instance = new();
}

public static class OpenApiMetadata
{
    /// <summary>Describes query parameters the handler reads itself, so the document shows their types.</summary>
    public static TBuilder WithQueryParameters<TBuilder>(this TBuilder builder, params QueryParameter[] parameters)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new QueryParametersMetadata(parameters));

    /// <summary>
    /// The route honours <c>Idempotency-Key</c> (<see cref="IdempotencyFilter"/>): the document shows the header and the 409 on reuse.
    /// </summary>
    public static RouteHandlerBuilder AcceptsIdempotencyKey(this RouteHandlerBuilder builder) =>
        builder.WithMetadata(IdempotencyKeyMetadata.Instance).AddEndpointFilter(IdempotencyFilter.Instance);

    public static QueryParameter Limit(int @default = 50, int maximum = MessageFilter.MaxLimit) =>
        new("limit", $"Page size, 1-{maximum} (default {@default}).")
        {
            Type = QueryType.Integer, Minimum = 1, Maximum = maximum, Default = @default.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };

    public static readonly QueryParameter Cursor =
        new("cursor", "Opaque: the `nextCursor` of the previous page. Omit it for the first (newest) page.");

    /// <summary>The history filters of <see cref="MessageFilter.Parse"/> (list and export).</summary>
    public static QueryParameter[] MessageFilters(bool paging)
    {
        List<QueryParameter> filters =
        [
            new("status", "Only messages in these statuses (comma-separated, or the parameter repeated).")
                { Type = QueryType.EnumList, Values = MessageStatus.All, SchemaName = "MessageStatusFilter" },
            new("type", "Only messages of these types (comma-separated, or the parameter repeated).")
                { Type = QueryType.EnumList, Values = MessageType.Concrete, SchemaName = "MessageTypeFilter" },
            new("direction", "`outbound` (sent by this agent) or `inbound` (replies).") { Type = QueryType.Enum, Values = ["inbound", "outbound"], SchemaName = "MessageDirectionFilter" },
            new("lineId", "Only messages of this line."),
            new("leadId", "Only messages to this lead."),
            new("batchId", "Only messages of this batch."),
            new("from", "Only messages whose time (sentAt, else scheduledAt, else createdAt) is at or after this time.") { Type = QueryType.DateTime },
            new("to", "Only messages whose time (sentAt, else scheduledAt, else createdAt) is before this time.") { Type = QueryType.DateTime },
            new("recipient", "Substring of the recipient's phone, email or name."),
            new("q", "Full-text search over content and recipient name: every word must occur, as a word or its beginning; a word without letters or digits (an emoji) as text. At most 16 words (32 word parts: letters and digits between other characters).") { MaxLength = 500 },
        ];
        if (paging)
            filters.AddRange([Limit(), Cursor]);
        return [.. filters];
    }
}

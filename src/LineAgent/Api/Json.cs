using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace LineAgent.Api;

/// <summary>Outputs are UTC with Z, e.g. 2026-11-26T22:10:00.123Z; inputs may carry any offset.</summary>
public sealed class UtcDateTimeOffsetConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options)
    {
        Span<byte> iso = stackalloc byte[Storage.Time.IsoLength];
        Storage.Time.WriteIso(value, iso);
        writer.WriteStringValue(iso);
    }
}

public static class AgentJson
{
    public static void Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        o.Converters.Add(new UtcDateTimeOffsetConverter());
    }

    /// <summary>
    /// The HTTP API's options. A request body's type (<see cref="IsRequestBody"/>) refuses a field it does not have
    /// rather than ignoring it (a misspelt "sheduledAt" would otherwise send at once), and no body may give a field
    /// twice (which one counts is not the client's to guess). Only request types are closed: the OpenAPI document is
    /// built from these options, and the answers' schemas stay open to fields added later. Stored JSON uses
    /// <see cref="Options"/>.
    /// </summary>
    public static void ConfigureRequests(JsonSerializerOptions o)
    {
        Configure(o);
        o.AllowDuplicateProperties = false;
        o.TypeInfoResolver = (o.TypeInfoResolver ?? new DefaultJsonTypeInfoResolver()).WithAddedModifier(info =>
        {
            if (info.Kind == JsonTypeInfoKind.Object && IsRequestBody(info.Type))
                info.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        });
    }

    /// <summary>The agent's request bodies and the objects inside them: *Request types and LeadInput (ApiRequestTypesTests checks every route's body).</summary>
    public static bool IsRequestBody(Type type) =>
        type.Assembly == typeof(AgentJson).Assembly && (type.Name.EndsWith("Request", StringComparison.Ordinal) || type.Name == "LeadInput");

    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        // As the HTTP answers are written (ASP.NET Core's own default): "+12025550123", not "\u002B12025550123", in
        // webhook payloads, the event stream, the NDJSON export and replayed answers. None of them is embedded in HTML.
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        Configure(o);
        return o;
    }
}

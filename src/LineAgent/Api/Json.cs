using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LineAgent.Api;

/// <summary>Outputs are UTC with Z, e.g. 2026-11-26T22:10:00.123Z; inputs may carry any offset.</summary>
public sealed class UtcDateTimeOffsetConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
}

public static class AgentJson
{
    public static void Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        o.Converters.Add(new UtcDateTimeOffsetConverter());
    }

    /// <summary>
    /// Request bodies only: a field the request type does not have is refused rather than ignored (a misspelt
    /// "sheduledAt" would otherwise send at once), and so is a field given twice (which one counts is not the client's
    /// to guess). Stored JSON and responses keep <see cref="Configure"/>'s defaults.
    /// </summary>
    public static void ConfigureRequests(JsonSerializerOptions o)
    {
        Configure(o);
        o.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        o.AllowDuplicateProperties = false;
    }

    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(o);
        return o;
    }
}

namespace LineAgent.Storage;

/// <summary>Stored times are INTEGER Unix milliseconds UTC.</summary>
public static class Time
{
    public static long ToMs(DateTimeOffset t) => t.ToUnixTimeMilliseconds();
    public static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
    public static DateTimeOffset? FromMs(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;

    /// <summary>A time as the API writes every time, in answers and in event details: UTC, milliseconds, Z.</summary>
    public static string Iso(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    public static string Iso(long ms) => Iso(FromMs(ms));
}

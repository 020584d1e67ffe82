namespace LineAgent.Storage;

/// <summary>Stored times are INTEGER Unix milliseconds UTC.</summary>
public static class Time
{
    public static long ToMs(DateTimeOffset t) => t.ToUnixTimeMilliseconds();
    public static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
    public static DateTimeOffset? FromMs(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;

    /// <summary>The length of <see cref="Iso(DateTimeOffset)"/>: yyyy-MM-ddTHH:mm:ss.fffZ.</summary>
    public const int IsoLength = 24;

    /// <summary>
    /// A time as the API writes every time, in answers and in event details: UTC, milliseconds, Z
    /// (<c>yyyy-MM-dd'T'HH:mm:ss.fff'Z'</c>; the milliseconds cut, not rounded, as that format does). Written digit by
    /// digit: through the custom format string each took the .NET formatter's general path, about 1 % of the agent's CPU
    /// under the POST load (perf: a message answer holds four times, and its first event one).
    /// </summary>
    public static string Iso(DateTimeOffset t) => string.Create(IsoLength, t.UtcDateTime, static (chars, utc) =>
    {
        Span<byte> ascii = stackalloc byte[IsoLength];
        WriteIso(utc, ascii);
        for (var i = 0; i < IsoLength; i++)
            chars[i] = (char)ascii[i];
    });

    public static string Iso(long ms) => Iso(FromMs(ms));

    /// <summary><see cref="Iso(DateTimeOffset)"/> as ASCII into <paramref name="into"/> (at least <see cref="IsoLength"/> bytes), for a JSON writer.</summary>
    public static void WriteIso(DateTimeOffset t, Span<byte> into) => WriteIso(t.UtcDateTime, into);

    private static void WriteIso(DateTime utc, Span<byte> into)
    {
        _ = into[IsoLength - 1];
        Digits(into[..4], utc.Year);
        into[4] = (byte)'-';
        Digits(into[5..7], utc.Month);
        into[7] = (byte)'-';
        Digits(into[8..10], utc.Day);
        into[10] = (byte)'T';
        Digits(into[11..13], utc.Hour);
        into[13] = (byte)':';
        Digits(into[14..16], utc.Minute);
        into[16] = (byte)':';
        Digits(into[17..19], utc.Second);
        into[19] = (byte)'.';
        Digits(into[20..23], utc.Millisecond);
        into[23] = (byte)'Z';
    }

    /// <summary><paramref name="value"/> in exactly <c>into.Length</c> decimal digits, zero-padded.</summary>
    private static void Digits(Span<byte> into, int value)
    {
        for (var i = into.Length - 1; i >= 0; i--)
        {
            into[i] = (byte)('0' + value % 10);
            value /= 10;
        }
    }
}

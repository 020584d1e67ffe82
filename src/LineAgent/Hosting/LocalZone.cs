namespace LineAgent.Hosting;

/// <summary>
/// The machine's own time zone, which schedules and send windows that name no zone use. .NET reads the TZ variable as a
/// zone name (IANA, a leading ':' allowed); anything else there (a POSIX rule such as "CET-1CEST,M3.5.0,M10.5.0/3", an
/// unknown name) makes the local zone UTC without a word (measured on this machine: TimeZoneInfo.Local.Id "UTC").
/// </summary>
public static class LocalZone
{
    /// <summary>What is wrong with <paramref name="tz"/> (the TZ variable), or null when it is unset, empty or a zone this machine knows.</summary>
    public static string? Problem(string? tz, TimeZoneInfo local)
    {
        if (string.IsNullOrWhiteSpace(tz) || TimeZoneInfo.TryFindSystemTimeZoneById(tz.TrimStart(':'), out _))
            return null;
        return $"TZ is '{tz}', which is not a time zone name this machine knows (an IANA name such as Europe/Berlin is): the " +
               $"agent's local time is {local.Id}, so schedules and send windows that name no zone are read in {local.Id}.";
    }

    /// <summary><see cref="Problem(string?, TimeZoneInfo)"/> for this process.</summary>
    public static string? Problem() => Problem(Environment.GetEnvironmentVariable("TZ"), TimeZoneInfo.Local);
}

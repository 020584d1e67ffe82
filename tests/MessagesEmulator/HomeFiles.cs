using System.Globalization;
using System.Text;

namespace MessagesEmulation;

/// <summary>
/// state.json: schema, accounts, whether Messages runs, launch/restart counts and the
/// failCount/hangCount/consentCount counters. Read without a lock (it is replaced atomically);
/// changed only under an exclusive lock on state.lock.
/// </summary>
public static class State
{
    public static string PathIn(string home) => Path.Combine(home, "state.json");

    public static Dictionary<string, object?> Read(string home)
    {
        string text;
        try { text = File.ReadAllText(PathIn(home), Util.Utf8); }
        catch (FileNotFoundException) { return []; }
        catch (DirectoryNotFoundException) { return []; }
        if (string.IsNullOrWhiteSpace(text))
            return [];
        try
        {
            return MiniJson.Parse(text) as Dictionary<string, object?> ?? throw new EmulatorException("state.json must hold a JSON object");
        }
        catch (FormatException e)
        {
            throw new EmulatorException($"state.json is not valid JSON: {e.Message}");
        }
    }

    /// <summary>Runs <paramref name="change"/> on the state under the lock, saves it and returns the result.</summary>
    public static T Update<T>(string home, Func<Dictionary<string, object?>, T> change)
    {
        using var lockFile = Util.OpenExclusive(Path.Combine(home, "state.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite);
        var state = Read(home);
        var result = change(state);
        Util.WriteAtomic(PathIn(home), Encoding.UTF8.GetBytes(MiniJson.Write(state, indented: true) + "\n"));
        return result;
    }

    public static void Update(string home, Action<Dictionary<string, object?>> change) => Update(home, s => { change(s); return 0; });

    /// <summary>Whether Messages runs (true unless `quit` said otherwise).</summary>
    public static bool Running(Dictionary<string, object?> state) => !(state.TryGetValue("running", out var v) && v is false);

    public static long Count(Dictionary<string, object?> state, string key) =>
        state.TryGetValue(key, out var v) && v is double d ? (long)d : 0;

    public static string? Text(Dictionary<string, object?> state, string key) => state.TryGetValue(key, out var v) ? v as string : null;

    public static string Me(Dictionary<string, object?> state) => Text(state, "me") ?? Defaults.Me;

    public static string SmsNumber(Dictionary<string, object?> state) => Text(state, "smsNumber") ?? Defaults.SmsNumber;

    /// <summary>True if this call may take one more of <paramref name="limit"/> events of <paramref name="kind"/> (null = unlimited, not counted).</summary>
    public static bool Consume(string home, string kind, long? limit, string? stamp)
    {
        if (limit is null)
            return true;
        return Update(home, state =>
        {
            if (!state.TryGetValue("counters", out var c) || c is not Dictionary<string, object?> counters || Text(counters, "stamp") != stamp)
            {
                counters = new Dictionary<string, object?> { ["stamp"] = stamp };
                state["counters"] = counters;
            }
            var used = Count(counters, kind);
            if (used >= limit)
                return false;
            counters[kind] = (double)(used + 1);
            return true;
        });
    }
}

public static class Defaults
{
    public const string Me = "me@icloud.com";
    public const string SmsNumber = "+15550000000";
    public static readonly string[] Services = ["iMessage", "SMS", "RCS"];
}

/// <summary>
/// control.json, read again on every call. Its stamp (write time, creation time, size, content hash)
/// changes whenever a test rewrites it, which restarts the counters.
/// </summary>
public sealed class Control
{
    private readonly Dictionary<string, object?> _values;

    private Control(Dictionary<string, object?> values, string? stamp)
    {
        _values = values;
        Stamp = stamp;
    }

    public string? Stamp { get; }

    public static string PathIn(string home) => Path.Combine(home, "control.json");

    /// <summary>Loads control.json ({} when absent); a half-written file is retried for about 200 ms.</summary>
    public static Control Load(string home)
    {
        var path = PathIn(home);
        string? problem = null;
        string? stamp = null;
        for (var attempt = 0; attempt < 40; attempt++)
        {
            byte[] data;
            FileInfo info;
            try
            {
                using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
                info = new FileInfo(path);
                data = new byte[f.Length];
                f.ReadExactly(data);
            }
            catch (FileNotFoundException) { return new Control([], null); }
            catch (DirectoryNotFoundException) { return new Control([], null); }
            stamp = string.Create(CultureInfo.InvariantCulture,
                $"{info.LastWriteTimeUtc.Ticks}:{info.CreationTimeUtc.Ticks}:{data.Length}:{Util.Fnv1a(data):x16}");
            var text = Util.Utf8.GetString(data);
            if (!string.IsNullOrWhiteSpace(text))
            {
                object? parsed;
                try
                {
                    parsed = MiniJson.Parse(text);
                }
                catch (FormatException e)
                {
                    problem = $"control.json is not valid JSON: {e.Message}";
                    Thread.Sleep(5);
                    continue;
                }
                return new Control(parsed as Dictionary<string, object?> ?? throw new EmulatorException("control.json must hold a JSON object"), stamp);
            }
            problem = null;
            Thread.Sleep(5);
        }
        if (problem is not null)
            throw new EmulatorException(problem);
        return new Control([], stamp);
    }

    public bool IsTrue(string key) => _values.TryGetValue(key, out var v) && v is true;

    public bool IsFalse(string key) => _values.TryGetValue(key, out var v) && v is false;

    public bool Has(string key) => _values.ContainsKey(key);

    public string? String(string key) => _values.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>A number (null when absent or null); negative numbers only where <paramref name="negative"/>.</summary>
    public double? Number(string key, bool negative = false)
    {
        if (!_values.TryGetValue(key, out var v) || v is null)
            return null;
        if (v is double d && (negative || d >= 0))
            return d;
        throw new EmulatorException($"control.json: {key} must be a{(negative ? "" : " non-negative")} number, got {MiniJson.Write(v)}");
    }

    public long? Integer(string key, bool negative = false)
    {
        var d = Number(key, negative);
        if (d is null)
            return null;
        if (d != Math.Floor(d.Value))
            throw new EmulatorException($"control.json: {key} must be an integer, got {MiniJson.Write(d)}");
        return (long)d.Value;
    }

    /// <summary>A list of strings (other items as their JSON text); null when absent.</summary>
    public List<string>? List(string key)
    {
        if (!_values.TryGetValue(key, out var v) || v is null)
            return null;
        if (v is not List<object?> items)
            throw new EmulatorException($"control.json: {key} must be a list, got {MiniJson.Write(v)}");
        var list = new List<string>(items.Count);
        foreach (var item in items)
            list.Add(item as string ?? MiniJson.Write(item));
        return list;
    }
}

/// <summary>calls.ndjson: one line per script call, argv recorded byte-exact (base64).</summary>
public static class CallLog
{
    public static string PathIn(string home) => Path.Combine(home, "calls.ndjson");

    /// <summary>Appends one ASCII JSON record under an exclusive lock, in one write: parallel callers never mix lines.</summary>
    public static void Append(string home, byte[] scriptPath, IReadOnlyList<byte[]> args)
    {
        var path = Util.Clean(scriptPath);
        var line = new StringBuilder(256);
        line.Append("{\"script\":");
        MiniJson.String(line, System.IO.Path.GetFileName(path));
        line.Append(",\"path\":");
        MiniJson.String(line, path);
        line.Append(",\"argv_b64\":[");
        for (var i = 0; i < args.Count; i++)
            line.Append(i == 0 ? "\"" : ",\"").Append(Convert.ToBase64String(args[i])).Append('"');
        var t = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / (double)TimeSpan.TicksPerSecond;
        line.Append("],\"argc\":").Append(args.Count)
            .Append(",\"pid\":").Append(Environment.ProcessId)
            .Append(",\"t\":").Append(t.ToString("0.000000", CultureInfo.InvariantCulture))
            .Append("}\n");
        var bytes = Encoding.ASCII.GetBytes(line.ToString());
        using var f = Util.OpenExclusive(PathIn(home), FileMode.Append, FileAccess.Write);
        f.Write(bytes);
    }
}

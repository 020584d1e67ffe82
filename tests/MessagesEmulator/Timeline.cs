using System.Diagnostics;
using System.Globalization;

namespace MessagesEmulation;

/// <summary>
/// What Messages does after `send` returns: row → sent (or error 22) → delivered → read. It runs in a detached
/// process so that it outlives the caller, which the agent may kill (osascript time-outs kill the whole process
/// tree, found by parent pid): /bin/sh starts it in the background and exits at once (a double spawn), so the
/// timeline is reparented away from the caller. Its stdin/stdout are /dev/null and its stderr is appended to
/// emulator-errors.log: it never holds the caller's pipes.
/// </summary>
internal static class Timeline
{
    public const string Command = "__timeline";

    /// <param name="Rows">The message rows (a URL preview row follows its message).</param>
    /// <param name="StartMs">Unix ms just before the rows were written: the first stage counts from there.</param>
    /// <param name="ReadMs">Delivered → read, or null: never read.</param>
    /// <param name="Fail22">error = 22 instead of sent (no iMessage / undeliverable SMS), then nothing more.</param>
    /// <param name="FromMeAfterMs">The rows were inserted with `is_from_me = 0` and no handle: this long after the write they get
    /// both (<see cref="HandleId"/>), before they are marked sent.</param>
    /// <param name="Pending">A <see cref="NewMessage"/> file: the timeline writes the rows itself, <see cref="WriteAfterMs"/> after
    /// <see cref="StartMs"/> (the script has returned by then), and the stages count from that write.</param>
    /// <param name="Ghost">The rows are never updated (the macOS 26 ghost row).</param>
    public sealed record Spec(long[] Rows, long StartMs, double ConfirmMs, double DeliverMs, double? ReadMs, bool Fail22,
        double? FromMeAfterMs = null, long HandleId = 0, string? Pending = null, double WriteAfterMs = 0, bool Ghost = false)
    {
        public string[] ToArgs() =>
        [
            Rows.Length == 0 ? "-" : string.Join(',', Rows.Select(r => r.ToString(CultureInfo.InvariantCulture))), StartMs.ToString(CultureInfo.InvariantCulture),
            ConfirmMs.ToString("R", CultureInfo.InvariantCulture), DeliverMs.ToString("R", CultureInfo.InvariantCulture),
            ReadMs?.ToString("R", CultureInfo.InvariantCulture) ?? "-", Fail22 ? "1" : "0",
            FromMeAfterMs?.ToString("R", CultureInfo.InvariantCulture) ?? "-", HandleId.ToString(CultureInfo.InvariantCulture),
            Pending ?? "-", WriteAfterMs.ToString("R", CultureInfo.InvariantCulture), Ghost ? "1" : "0",
        ];

        public static Spec FromArgs(string[] a) => new(
            a[0] == "-" ? [] : a[0].Split(',').Select(r => long.Parse(r, CultureInfo.InvariantCulture)).ToArray(), long.Parse(a[1], CultureInfo.InvariantCulture),
            double.Parse(a[2], CultureInfo.InvariantCulture), double.Parse(a[3], CultureInfo.InvariantCulture),
            a[4] == "-" ? null : double.Parse(a[4], CultureInfo.InvariantCulture), a[5] == "1",
            a[6] == "-" ? null : double.Parse(a[6], CultureInfo.InvariantCulture), long.Parse(a[7], CultureInfo.InvariantCulture),
            a[8] == "-" ? null : a[8], double.Parse(a[9], CultureInfo.InvariantCulture), a[10] == "1");
    }

    public static void Start(string home, Spec spec)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("log=$1; shift; \"$@\" </dev/null >/dev/null 2>>\"$log\" &");
        psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add(Path.Combine(home, "emulator-errors.log"));
        psi.ArgumentList.Add(Host.DotnetPath());
        psi.ArgumentList.Add(Host.EmulatorDll);
        psi.ArgumentList.Add(Command);
        psi.ArgumentList.Add(home);
        foreach (var a in spec.ToArgs())
            psi.ArgumentList.Add(a);
        using var intermediate = Process.Start(psi) ?? throw new EmulatorException("could not start /bin/sh for the timeline");
        intermediate.StandardInput.Close();
        intermediate.WaitForExit();
        if (intermediate.ExitCode != 0)
            throw new EmulatorException($"the timeline launcher exited with {intermediate.ExitCode}: {intermediate.StandardError.ReadToEnd()}");
    }

    /// <summary>The detached process itself (`__timeline home rows start confirm deliver read fail22`). Errors go to emulator-errors.log.</summary>
    public static int Run(string[] args)
    {
        var home = args.Length > 1 ? args[1] : ".";
        try
        {
            var spec = Spec.FromArgs(args[2..]);
            ChatDbDates.OffsetMs = Control.Load(home).Number("clockOffsetMs", negative: true) ?? 0;
            var start = spec.StartMs;
            var rows = spec.Rows;
            var handle = spec.HandleId;
            if (spec.Pending is { } pending)
            {
                Util.Sleep(spec.StartMs + spec.WriteAfterMs - NowMs());
                var message = NewMessage.Load(pending);
                File.Delete(pending);
                start = NowMs();
                var (rowId, previewId, handleId) = MessageWriter.Write(home, message);
                rows = previewId is { } p ? [rowId, p] : [rowId];
                handle = handleId;
            }
            if (spec.Ghost)
                return 0; // never updated
            using var db = ChatDb.OpenIn(home);
            if (spec.FromMeAfterMs is { } fromMe)
            {
                Util.Sleep(start + fromMe - NowMs());
                foreach (var r in rows)
                    db.UpdateMessage(r, new Row { { "is_from_me", 1 }, { "handle_id", handle } });
            }
            // The first stage counts from the row write: this process started a little later.
            Util.Sleep(start + spec.ConfirmMs - NowMs());
            if (spec.Fail22)
            {
                foreach (var r in rows)
                    db.UpdateMessage(r, new Row { { "error", 22 }, { "is_finished", 1 } });
                return 0;
            }
            foreach (var r in rows)
                db.UpdateMessage(r, new Row { { "is_sent", 1 }, { "is_finished", 1 } });
            // Later stages count from the previous one, so that their gaps stay as asked.
            Util.Sleep(spec.DeliverMs);
            var now = ChatDb.NowNs();
            foreach (var r in rows)
                db.UpdateMessage(r, new Row { { "is_delivered", 1 }, { "date_delivered", now } });
            if (spec.ReadMs is { } readMs)
            {
                Util.Sleep(readMs);
                now = ChatDb.NowNs();
                foreach (var r in rows)
                    db.UpdateMessage(r, new Row { { "date_read", now }, { "is_read", 1 } });
            }
            return 0;
        }
        catch (Exception e)
        {
            Util.LogError(home, $"timeline {string.Join(' ', args)}:\n{e}");
            return 1;
        }
    }

    public static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
}

/// <summary>How to start the emulator again (for the timeline).</summary>
public static class Host
{
    public static string EmulatorDll => typeof(Host).Assembly.Location;

    /// <summary>The dotnet host: the one running us if it is dotnet, else DOTNET_HOST_PATH, else `dotnet` from PATH.</summary>
    public static string DotnetPath()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
            return self;
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return string.IsNullOrEmpty(host) ? "dotnet" : host;
    }
}

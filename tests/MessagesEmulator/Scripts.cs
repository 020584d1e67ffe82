using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MessagesEmulation;

/// <summary>
/// The LineAgent scripts played together with Messages, chosen by the script file's basename:
/// send.applescript, status.applescript and restart-messages.applescript.
/// </summary>
public static partial class Scripts
{
    public const int AccountStep = 1001;
    public const int ParticipantStep = 1002;
    public const int SendStep = 1003;
    public const string SendingMarker = "LINEAGENT:SENDING";

    /// <summary>Apple's default Apple-event timeout, used when the script has no `with timeout`.</summary>
    public const int DefaultAppleEventTimeoutSeconds = 120;

    private sealed class Call(string home, byte[] rawPath, string path, string[] args, byte[][] rawArgs, Control control, Stream stdout, Stream stderr)
    {
        public string Home => home;
        public byte[] RawPath => rawPath;
        public string Path => path;
        public string[] Args => args;
        public byte[][] RawArgs => rawArgs;
        public Control Control => control;
        public void Out(string text) => Util.Write(stdout, text);
        public void Err(string text) => Util.Write(stderr, text);
        public void Err(byte[] bytes) => Util.Write(stderr, bytes);
        public bool Consume(string kind, long? limit) => State.Consume(home, kind, limit, control.Stamp);
    }

    /// <summary>Runs a script call as osascript would: exit 0, 1 (execution error) or 2 (emulator problem, thrown).</summary>
    public static int Run(string home, byte[] rawScriptPath, byte[][] rawArgs, Stream stdout, Stream stderr)
    {
        // control.json is read before the call is logged: a test that waits for the call and then changes the control
        // changes the next call, never this one (a CI failure: a recordOnly send read the next send's control and wrote a row).
        Control control;
        try
        {
            control = Control.Load(home);
        }
        finally
        {
            CallLog.Append(home, rawScriptPath, rawArgs);
        }
        ChatDbDates.OffsetMs = control.Number("clockOffsetMs", negative: true) ?? 0;
        var path = Util.Clean(rawScriptPath);
        var args = new string[rawArgs.Length];
        for (var i = 0; i < args.Length; i++)
            args[i] = Util.Clean(rawArgs[i]);
        var call = new Call(home, rawScriptPath, path, args, rawArgs, control, stdout, stderr);
        if (control.IsTrue("requireScriptFile") && !File.Exists(path))
        {
            call.Err($"osascript: {path}: No such file or directory (-43)\n");
            return 1;
        }
        var name = System.IO.Path.GetFileName(path);
        try
        {
            ConsentPrompt(call);
            if (name == "send.applescript" && control.IsTrue("recordOnly"))
                return 0; // checked here, before the send code is even compiled: start-up time counts
            return name switch
            {
                "send.applescript" => Send(call),
                "status.applescript" => Status(call),
                "restart-messages.applescript" => Restart(call),
                _ => throw new ScriptError(-1728, $"Messages got an error: Can\u2019t get script \u201c{name}\u201d."),
            };
        }
        catch (ScriptError e)
        {
            call.Err([.. rawScriptPath, .. Util.Utf8.GetBytes($": execution error: {e.Message} ({e.Number})\n")]);
            return 1;
        }
    }

    /// <summary>The first Automation consent dialog holds the Apple event until the user answers.</summary>
    private static void ConsentPrompt(Call call)
    {
        var ms = call.Control.Number("consentPromptMs");
        if (ms is > 0 && call.Consume("consent", call.Control.Integer("consentCount") ?? 1))
            Util.Sleep(ms.Value);
    }

    // ------------------------------------------------------------------ send

    private static int Send(Call call)
    {
        var control = call.Control;
        if (control.IsTrue("recordOnly"))
            return 0;
        if (call.Args.Length != 3)
            throw new ScriptError(-1700, "usage: send.applescript <iMessage|SMS|RCS> <recipient> <text>");
        var service = call.Args[0];
        var recipient = call.Args[1];
        var state = State.Read(call.Home);
        var failStep = control.String("failStep") ?? "account";
        if (failStep is not ("account" or "participant" or "send"))
            throw new EmulatorException($"control.json: failStep must be account, participant or send, got {failStep}");

        // `tell application "Messages"` launches Messages when it is not running.
        if (!State.Running(state))
        {
            var launched = State.Update(call.Home, s =>
            {
                if (State.Running(s))
                    return false;
                s["running"] = true;
                s["launches"] = (double)(State.Count(s, "launches") + 1);
                return true;
            });
            if (launched)
                Util.Sleep(control.Number("launchDelayMs") ?? 0);
        }

        Step(AccountStep, $"account {service}", () =>
        {
            InjectedFailure(call, "send", failStep == "account", service, recipient);
            if (!Defaults.Services.Contains(service))
                throw new ScriptError(-1700, $"Can\u2019t make \"{service}\" into type constant.");
            var exists = service switch
            {
                "iMessage" => !control.IsFalse("imessageSignedIn"),
                "SMS" => !control.IsFalse("smsAccount"),
                _ => control.IsTrue("rcsAccount"),
            };
            if (!exists)
                throw new ScriptError(-1719, Message(-1719, service, recipient, "account", call));
        });

        Step(ParticipantStep, $"participant {recipient}", () =>
        {
            MaybeHang(call, "before_send");
            InjectedFailure(call, "send", failStep == "participant", service, recipient);
            if (control.List("unresolvable")?.Contains(recipient) == true)
                throw new ScriptError(-1728, Message(-1728, service, recipient, "participant", call));
        });

        call.Err(SendingMarker + "\n");

        Step(SendStep, "send", () =>
        {
            InjectedFailure(call, "send", failStep == "send", service, recipient);
            Util.Sleep(control.Number("sendDelayMs") ?? 0);
            WriteSent(call, service, recipient);
            MaybeHang(call, "after_send");
            Util.Sleep(control.Number("returnDelayMs") ?? 0);
        });
        return 0;
    }

    /// <summary>The script's `try … on error m number n … error "<label>: " & m & " (" & n & ")" number <step>`.</summary>
    private static void Step(int number, string label, Action body)
    {
        try
        {
            body();
        }
        catch (ScriptError e)
        {
            throw new ScriptError(number, $"{label}: {e.Message} ({e.Number})");
        }
    }

    [GeneratedRegex(@"https?://\S+", RegexOptions.IgnoreCase)]
    private static partial Regex UrlPattern();

    private static void WriteSent(Call call, string service, string recipient)
    {
        var control = call.Control;
        var rawText = call.RawArgs[2];
        var ghost = control.IsTrue("ghost");
        byte[] body;
        if (control.String("attributedBodyFile") is { } file)
            body = File.ReadAllBytes(file);
        else if (control.IsTrue("doubleText"))
            body = TypedStream.Encode([.. rawText, .. rawText]);
        else
            body = TypedStream.Encode(rawText);
        byte[]? preview = null;
        if (control.IsTrue("urlPreview") && UrlPattern().Match(call.Args[2]) is { Success: true } url)
            preview = TypedStream.Encode(url.Value);

        var fromMeLater = control.Number("fromMeLaterMs") is > 0 and var f ? f : (double?)null;
        var message = new NewMessage
        {
            Service = service, Address = recipient, AttributedBody = body, FromMe = true, Ghost = ghost, UrlPreviewBody = preview,
            NotYetFromMe = fromMeLater is not null && !ghost,
        };
        var fail22 = service == "iMessage"
            ? control.List("nonImessage")?.Contains(recipient) == true
            : control.List("smsUndeliverable")?.Contains(recipient) == true;
        var readMs = control.Number("readDelayMs");
        var readBy = control.List("readBy");
        if (readBy is not null && !readBy.Contains(recipient))
            readMs = null;
        var confirmMs = control.Number("confirmDelayMs") ?? 300;
        var deliverMs = control.Number("deliverDelayMs") ?? 300;
        var start = Timeline.NowMs();
        if (control.Number("rowAfterReturnMs") is > 0 and var after)
        {
            // The script returns before Messages has written the row: the detached timeline writes it.
            var pending = Path.Combine(call.Home, $"pending-{Guid.NewGuid():N}.msg");
            message.Save(pending);
            Timeline.Start(call.Home, new Timeline.Spec([], start, confirmMs, deliverMs, readMs, fail22, fromMeLater,
                Pending: pending, WriteAfterMs: after, Ghost: ghost));
            return;
        }
        var (rowId, previewId, handleId) = MessageWriter.Write(call.Home, message);
        if (ghost)
            return; // never updated
        Timeline.Start(call.Home, new Timeline.Spec(previewId is { } p ? [rowId, p] : [rowId], start, confirmMs, deliverMs, readMs, fail22,
            fromMeLater, handleId));
    }

    // ------------------------------------------------------------------ status, restart

    private static int Status(Call call)
    {
        // `application "Messages" is running` asks the system, not Messages: no Apple event, no launch.
        if (!State.Running(State.Read(call.Home)))
        {
            call.Out("not_running\n");
            return 0;
        }
        InjectedFailure(call, "status", true, "", "");
        MaybeHang(call, "status");
        var state = State.Read(call.Home);
        var control = call.Control;
        var signedIn = !control.IsFalse("imessageSignedIn");
        var connection = signedIn ? control.String("imessageConnection") ?? "connected" : "disconnected";
        // An account's `id` is its scriptUniqueId, a GUID (Apple's dictionary; a participant's id is "<account GUID>:<address>").
        string Id(string service) => ChatDb.AccountId(service, State.Me(state), State.SmsNumber(state));
        var lines = new List<string>
        {
            $"iMessage\t{Id("iMessage")}\t{(signedIn ? "true" : "false")}\t{connection}",
        };
        if (!control.IsFalse("smsAccount"))
            lines.Add($"SMS\t{Id("SMS")}\ttrue\tconnected");
        if (control.IsTrue("rcsAccount"))
            lines.Add($"RCS\t{Id("RCS")}\ttrue\tconnected");
        call.Out(string.Join("\n", lines) + "\n");
        return 0;
    }

    /// <summary>
    /// The real script kills Messages by pid, relaunches it and waits (up to 60 s) for the iMessage account to
    /// be connected, then prints its connection status. Calls hung in Messages end with -609.
    /// </summary>
    private static int Restart(Call call)
    {
        InjectedFailure(call, "restart-messages", true, "", "");
        State.Update(call.Home, s =>
        {
            s["restarts"] = (double)(State.Count(s, "restarts") + 1);
            s["running"] = true;
        });
        Util.Sleep(call.Control.Number("reconnectDelayMs") ?? 0);
        call.Out(call.Control.IsFalse("imessageSignedIn") ? "disconnected\n" : "connected\n");
        return 0;
    }

    // ------------------------------------------------------------------ injected failures and hangs

    /// <summary>Raises control.failWith (raw number) if it applies to this script (failOn), at this step, within failCount.</summary>
    private static void InjectedFailure(Call call, string script, bool atThisStep, string service, string recipient)
    {
        var control = call.Control;
        var code = control.Integer("failWith", negative: true);
        if (code is null || !atThisStep)
            return;
        var failOn = control.List("failOn") ?? ["send", "status"];
        if (!failOn.Select(s => s.Replace(".applescript", "", StringComparison.Ordinal)).Contains(script))
            return;
        if (!call.Consume("fail", control.Integer("failCount")))
            return;
        var step = script == "send" ? control.String("failStep") ?? "account" : script;
        throw new ScriptError((int)code.Value, Message((int)code.Value, service, recipient, step, call));
    }

    /// <summary>Messages' text for an error number (control.failMessage overrides it; {recipient} and {service} are replaced).</summary>
    private static string Message(int code, string service, string recipient, string step, Call call)
    {
        var template = call.Control.String("failMessage") ?? code switch
        {
            -1719 => "Messages got an error: Can\u2019t get account 1 whose service type = {service}. Invalid index.",
            -1728 when step == "status" => "Messages got an error: Can\u2019t get account 1. Invalid index.",
            -1728 when step == "account" => "Messages got an error: Can\u2019t get account 1 whose service type = {service}.",
            -1728 => "Messages got an error: Can\u2019t get participant \"{recipient}\" of account id \"{account}\".",
            -1743 => "Not authorized to send Apple events to Messages.",
            -2753 => "The variable {service} is not defined.",
            -1712 => "Messages got an error: AppleEvent timed out.",
            -1700 => "Can\u2019t make \"{service}\" into type constant.",
            -600 => "Messages got an error: Application isn\u2019t running.",
            -609 => "Messages got an error: Connection is invalid.",
            _ => $"Messages got an error: An error of type {code} has occurred.",
        };
        var account = "";
        if (template.Contains("{account}", StringComparison.Ordinal))
        {
            var state = State.Read(call.Home);
            account = ChatDb.AccountId(service, State.Me(state), State.SmsNumber(state));
        }
        return template.Replace("{recipient}", recipient, StringComparison.Ordinal)
            .Replace("{service}", service, StringComparison.Ordinal)
            .Replace("{account}", account, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"with\s+timeout\s+of\s+(\d+)\s+seconds?", RegexOptions.IgnoreCase)]
    private static partial Regex WithTimeoutPattern();

    /// <summary>
    /// Hangs when control.hang names this stage (within hangCount). Like an Apple event to a wedged Messages it
    /// ends with -1712 after hangMaxMs, or else after the script's own `with timeout of N seconds` (120 s without
    /// one), and with -609 as soon as Messages is restarted or quit. The caller may also kill it.
    /// </summary>
    private static void MaybeHang(Call call, string stage)
    {
        var control = call.Control;
        if (control.String("hang") != stage)
            return;
        // The restart count before the hang is taken, so that a restart right after it is not missed.
        var restarts = State.Count(State.Read(call.Home), "restarts");
        // Counted even without hangCount: state.json counters.hang tells a test that the hang has begun.
        if (!call.Consume("hang", control.Integer("hangCount") ?? long.MaxValue))
            return;
        var limitMs = control.Number("hangMaxMs") ?? ScriptTimeoutSeconds(call.Path) * 1000.0;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var left = limitMs - clock.Elapsed.TotalMilliseconds;
            if (left <= 0)
                throw new ScriptError(-1712, "Messages got an error: AppleEvent timed out.");
            Util.Sleep(Math.Min(100, left));
            var now = State.Read(call.Home);
            if (State.Count(now, "restarts") != restarts || !State.Running(now))
                throw new ScriptError(-609, "Messages got an error: Connection is invalid.");
        }
    }

    private static int ScriptTimeoutSeconds(string scriptPath)
    {
        try
        {
            if (File.Exists(scriptPath) && WithTimeoutPattern().Match(File.ReadAllText(scriptPath)) is { Success: true } m
                && int.TryParse(m.Groups[1].Value, out var seconds))
                return seconds;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return DefaultAppleEventTimeoutSeconds;
    }
}

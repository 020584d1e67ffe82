using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace LineAgent.Bridge.Osascript;

/// <summary>The step of send.applescript that raised the error (its own error numbers).</summary>
public enum ScriptStep
{
    None = 0,
    /// <summary>`1st account whose service type = X`.</summary>
    Account = 1001,
    /// <summary>The recipient as a participant of that account.</summary>
    Participant = 1002,
    /// <summary>`send` itself (after the marker: it may have gone out).</summary>
    Send = 1003,
}

/// <summary>What kind of failure osascript reported, from the script's step and Apple's raw error number.</summary>
public enum OsaErrorKind
{
    None,
    /// <summary>No account of that service type (step account; -1719 Invalid index, -2753 before Big Sur).</summary>
    AccountMissing,
    /// <summary>Messages cannot resolve the address as a participant (step participant, -1728): the recipient's problem.</summary>
    RecipientUnresolvable,
    /// <summary>`send` raised an error (after the marker).</summary>
    SendRefused,
    /// <summary>-1743: not authorised to send Apple events to Messages (Automation permission).</summary>
    NotAuthorized,
    /// <summary>-600 application isn't running / -609 connection invalid (Messages quit or crashed mid-call).</summary>
    NotRunning,
    /// <summary>-1712: AppleEvent timed out (Messages is wedged).</summary>
    AppleEventTimeout,
    /// <summary>-1700: can't make into type (bad service type).</summary>
    BadType,
    /// <summary>-1728 outside a send step: something Messages could not find.</summary>
    CantGet,
    /// <summary>Our own hard timeout expired; the process tree was killed.</summary>
    TimedOut,
    /// <summary>The runner itself could not be started (missing, not executable).</summary>
    LaunchFailed,
    Other,
}

/// <param name="StderrComplete">False when stderr could not be read to its end (a process outside the killed tree kept the
/// pipe open): what was written there, the marker included, is then unknown.</param>
public sealed record OsascriptResult(int ExitCode, string Stdout, string Stderr, bool TimedOut, TimeSpan Elapsed, string? LaunchError = null,
    bool StderrComplete = true)
{
    /// <summary>The marker send.applescript logs just before `send`: without it, nothing was sent.</summary>
    public const string SendingMarker = "LINEAGENT:SENDING";

    public bool Succeeded => ExitCode == 0 && !TimedOut && LaunchError is null;

    /// <summary>Whether the script may have reached `send`: only a complete stderr without the marker proves it did not.</summary>
    public bool ReachedSend => !StderrComplete || Stderr.Contains(SendingMarker, StringComparison.Ordinal);

    /// <summary>The number osascript reported last: a step number (1001-1003) or Apple's own.</summary>
    public int? ErrorNumber => OsascriptRunner.ParseErrorNumbers(Stderr).LastOrDefault() is var n and not 0 ? n : null;

    public ScriptStep Step => ErrorNumber is >= (int)ScriptStep.Account and <= (int)ScriptStep.Send ? (ScriptStep)ErrorNumber.Value : ScriptStep.None;

    /// <summary>Apple's own error number: inside the step's message when a step raised it, else the last one.</summary>
    public int? RawErrorNumber
    {
        get
        {
            var numbers = OsascriptRunner.ParseErrorNumbers(Stderr);
            if (Step == ScriptStep.None)
                return numbers.Count > 0 ? numbers[^1] : null;
            return numbers.Count > 1 ? numbers[^2] : null;
        }
    }

    public OsaErrorKind ErrorKind =>
        LaunchError is not null ? OsaErrorKind.LaunchFailed
        : TimedOut ? OsaErrorKind.TimedOut
        : ExitCode == 0 ? OsaErrorKind.None
        : RawErrorNumber switch
        {
            // Whatever the step: these say something about Messages or the permission, not the recipient.
            -1743 => OsaErrorKind.NotAuthorized,
            -600 or -609 => OsaErrorKind.NotRunning,
            -1712 => OsaErrorKind.AppleEventTimeout,
            -1700 => OsaErrorKind.BadType,
            _ => Step switch
            {
                ScriptStep.Account => OsaErrorKind.AccountMissing,
                ScriptStep.Participant => OsaErrorKind.RecipientUnresolvable,
                ScriptStep.Send => OsaErrorKind.SendRefused,
                _ => RawErrorNumber switch
                {
                    -1719 or -2753 => OsaErrorKind.AccountMissing,
                    -1728 => OsaErrorKind.CantGet,
                    _ => OsaErrorKind.Other,
                },
            },
        };

    /// <summary>osascript's error text without the script path prefix and the marker lines.</summary>
    public string ErrorText
    {
        get
        {
            if (LaunchError is not null) return LaunchError;
            if (TimedOut) return $"osascript did not finish within {Elapsed.TotalSeconds:0.#} s and was killed";
            var lines = Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => !l.Contains(SendingMarker, StringComparison.Ordinal)).ToList();
            var text = string.Join(" ", lines);
            var i = text.IndexOf("execution error: ", StringComparison.Ordinal);
            return i >= 0 ? text[(i + "execution error: ".Length)..] : text.Length > 0 ? text : $"osascript exited with {ExitCode}";
        }
    }
}

/// <summary>
/// Runs `osascript &lt;script&gt; &lt;args&gt;` with <see cref="ProcessStartInfo.ArgumentList"/> (no shell, no -e,
/// nothing pasted into script source), reads stdout and stderr asynchronously and kills the whole
/// process tree when the hard timeout expires.
/// </summary>
public sealed partial class OsascriptRunner(string osascriptPath, TimeSpan timeout)
{
    [GeneratedRegex(@"\((-?\d+)\)")]
    private static partial Regex ErrorNumberPattern();

    public string OsascriptPath => osascriptPath;
    public TimeSpan Timeout => timeout;

    /// <summary>
    /// The `(number)`s of osascript's error line, in order: `… execution error: account SMS: … Invalid index. (-1719) (1001)`
    /// gives [-1719, 1001]. Error texts are localised, so only the numbers are read.
    /// </summary>
    public static IReadOnlyList<int> ParseErrorNumbers(string stderr)
    {
        var line = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.Contains("execution error", StringComparison.Ordinal))
            ?? stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
        return ErrorNumberPattern().Matches(line).Select(m => int.TryParse(m.Groups[1].Value, out var n) ? n : 0).Where(n => n != 0).ToList();
    }

    public async Task<OsascriptResult> RunAsync(string scriptPath, IReadOnlyList<string> args, CancellationToken ct = default, TimeSpan? hardTimeout = null)
    {
        var psi = new ProcessStartInfo(osascriptPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add(scriptPath);
        foreach (var a in args)
            psi.ArgumentList.Add(a);

        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = psi };
        try
        {
            if (!process.Start())
                return new OsascriptResult(-1, "", "", false, clock.Elapsed, $"could not start {osascriptPath}");
        }
        catch (Win32Exception e)
        {
            return new OsascriptResult(-1, "", "", false, clock.Elapsed, $"could not start {osascriptPath}: {e.Message}");
        }

        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(hardTimeout ?? timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = !ct.IsCancellationRequested;
            try { process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { } // already gone
            await process.WaitForExitAsync(CancellationToken.None);
            ct.ThrowIfCancellationRequested();
        }
        // Streams end when every holder of the pipes exits; after a kill that is immediate.
        var outputRead = DrainAsync(stdout);
        var errorsRead = DrainAsync(stderr);
        var (output, _) = await outputRead;
        var (errors, errorsComplete) = await errorsRead;
        return new OsascriptResult(timedOut ? -1 : process.ExitCode, output, errors, timedOut, clock.Elapsed, StderrComplete: errorsComplete);
    }

    /// <summary>How long the pipes are read after the process exited.</summary>
    public static readonly TimeSpan DrainFor = TimeSpan.FromSeconds(5);

    /// <summary>A grandchild that kept the pipe open must not hang the caller; what it held back is then unknown (not "nothing").</summary>
    private static async Task<(string Text, bool Complete)> DrainAsync(Task<string> read)
    {
        try { return (await read.WaitAsync(DrainFor), true); }
        catch (TimeoutException) { return ("", false); }
    }
}

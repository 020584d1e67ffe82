using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace LineAgent.Bridge.Osascript;

/// <summary>What kind of failure osascript reported.</summary>
public enum OsaErrorKind
{
    None,
    /// <summary>-1728: can't get buddy/participant/account (Messages not running, not signed in, unknown chat).</summary>
    CantGet,
    /// <summary>-1743: not authorised to send Apple events to Messages (Automation permission).</summary>
    NotAuthorized,
    /// <summary>-2753: variable not defined (no SMS account: text message forwarding is off).</summary>
    VariableNotDefined,
    /// <summary>-1712: AppleEvent timed out (Messages is wedged).</summary>
    AppleEventTimeout,
    /// <summary>-1700: can't make into type (bad service type).</summary>
    BadType,
    /// <summary>Our own hard timeout expired; the process tree was killed.</summary>
    TimedOut,
    /// <summary>The runner itself could not be started (missing, not executable).</summary>
    LaunchFailed,
    Other,
}

public sealed record OsascriptResult(int ExitCode, string Stdout, string Stderr, bool TimedOut, TimeSpan Elapsed, string? LaunchError = null)
{
    /// <summary>The marker send.applescript logs just before `send`: without it, nothing was sent.</summary>
    public const string SendingMarker = "LINEAGENT:SENDING";

    public bool Succeeded => ExitCode == 0 && !TimedOut && LaunchError is null;

    public bool ReachedSend => Stderr.Contains(SendingMarker, StringComparison.Ordinal);

    public int? ErrorNumber => OsascriptRunner.ParseErrorNumber(Stderr);

    public OsaErrorKind ErrorKind =>
        LaunchError is not null ? OsaErrorKind.LaunchFailed
        : TimedOut ? OsaErrorKind.TimedOut
        : ExitCode == 0 ? OsaErrorKind.None
        : ErrorNumber switch
        {
            -1728 => OsaErrorKind.CantGet,
            -1743 => OsaErrorKind.NotAuthorized,
            -2753 => OsaErrorKind.VariableNotDefined,
            -1712 => OsaErrorKind.AppleEventTimeout,
            -1700 => OsaErrorKind.BadType,
            _ => OsaErrorKind.Other,
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
    [GeneratedRegex(@"\((-?\d+)\)\s*$", RegexOptions.Multiline)]
    private static partial Regex ErrorNumberPattern();

    public string OsascriptPath => osascriptPath;
    public TimeSpan Timeout => timeout;

    public static int? ParseErrorNumber(string stderr)
    {
        var matches = ErrorNumberPattern().Matches(stderr);
        return matches.Count > 0 && int.TryParse(matches[^1].Groups[1].Value, out var n) ? n : null;
    }

    public async Task<OsascriptResult> RunAsync(string scriptPath, IReadOnlyList<string> args, CancellationToken ct = default)
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
        deadline.CancelAfter(timeout);
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
        var output = await DrainAsync(stdout);
        var errors = await DrainAsync(stderr);
        return new OsascriptResult(timedOut ? -1 : process.ExitCode, output, errors, timedOut, clock.Elapsed);
    }

    /// <summary>A grandchild that kept the pipe open must not hang the caller.</summary>
    private static async Task<string> DrainAsync(Task<string> read)
    {
        try { return await read.WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (TimeoutException) { return ""; }
    }
}

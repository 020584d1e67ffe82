using System.Diagnostics;
using System.Text.Json.Nodes;
using MimeKit;

namespace LineAgent.Tests.Support;

/// <summary>tests/SmtpStandIn/smtp_server.py: a real SMTP server (aiosmtpd) on a free loopback port.</summary>
public sealed class SmtpStandIn : IDisposable
{
    private readonly Process _process;

    public SmtpStandIn(string maildir, int port = 0)
    {
        Maildir = maildir;
        var psi = new ProcessStartInfo(MessagesEmulator.Python)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "SmtpStandIn", "smtp_server.py"));
        psi.ArgumentList.Add(maildir);
        psi.ArgumentList.Add(port.ToString());
        _process = Process.Start(psi)!;
        var first = _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)).GetAwaiter().GetResult();
        if (first is null || !first.StartsWith("LISTENING ", StringComparison.Ordinal))
            throw new InvalidOperationException($"SMTP stand-in did not start: {first} {_process.StandardError.ReadToEnd()}");
        Port = int.Parse(first["LISTENING ".Length..]);
    }

    public string Maildir { get; }
    public int Port { get; }

    public Dictionary<string, string?> Settings(string from = "Sales Team <sales@example.com>") => new()
    {
        ["Email:Smtp:Host"] = "127.0.0.1",
        ["Email:Smtp:Port"] = Port.ToString(),
        ["Email:Smtp:Security"] = "None",
        ["Email:Smtp:Timeout"] = "00:00:10",
        ["Lines:0:Id"] = "default",
        ["Lines:0:Email:From"] = from,
        ["Lines:0:Pacing:Enabled"] = "false",
        ["Agent:DryRun"] = "false",
        ["Resilience:RetryBaseDelay"] = "00:00:00.100",
    };

    /// <summary>The messages the server accepted, in order.</summary>
    public IReadOnlyList<MimeMessage> Received() =>
        Directory.GetFiles(Maildir, "*.eml").OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f)))
            .Select(f => MimeMessage.Load(f)).ToList();

    public IReadOnlyList<JsonNode> Log()
    {
        var path = Path.Combine(Maildir, "log.ndjson");
        return File.Exists(path) ? File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!).ToList() : [];
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(5000))
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}

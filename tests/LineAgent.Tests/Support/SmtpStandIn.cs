using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using MimeKit;
using SmtpServer;
using SmtpServer.Authentication;
using SmtpServer.ComponentModel;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace LineAgent.Tests.Support;

/// <summary>
/// A real SMTP server (the SmtpServer package) on a loopback port, for the email tests.
/// Every accepted message is written to &lt;maildir&gt;/&lt;n&gt;.eml (the raw DATA); each event goes to
/// &lt;maildir&gt;/log.ndjson. Behaviour is chosen by the recipient's local part, so one server serves every test:
/// <c>tempfail-once@</c> RCPT 451 the first time for that address, then 250; <c>tempfail@</c> always 451;
/// <c>reject@</c> 550 5.1.1; <c>rejectdata@</c> 554 at the end of DATA; <c>tempfaildata@</c> 451 at the end of DATA; <c>drop@</c> the connection is
/// closed after the data arrived, with no reply; <c>slow@</c> RCPT answered after 3 s (a server that tarpits); <c>holddata@</c> the
/// reply to the data (250) held until <see cref="ReleaseHeldData"/> (a server slow to answer the data: the client does not know);
/// <c>holdrcpt@</c> the reply to RCPT TO held until then too (a tarpit: nothing of the message has reached the server).
/// </summary>
public sealed class SmtpStandIn : IDisposable
{
    private readonly SmtpServer.SmtpServer _server;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;
    private readonly Lock _logGate = new();
    private readonly HashSet<string> _tempfailed = [];
    private int _count;
    private readonly TaskCompletionSource _releaseHeldData = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets every held data reply of a <c>holddata@</c> message go (250).</summary>
    public void ReleaseHeldData() => _releaseHeldData.TrySetResult();

    /// <param name="login">When given, the server asks for AUTH (offered without TLS) and answers each login with it: true
    /// 235, false 535, or it throws (an <see cref="SmtpResponseException"/> for another reply, such as 454).</param>
    public SmtpStandIn(string maildir, int port = 0, Func<string, string, bool>? login = null)
    {
        Maildir = maildir;
        Directory.CreateDirectory(maildir);
        Port = port == 0 ? FreePort() : port;
        var options = new SmtpServerOptionsBuilder()
            .ServerName("smtp.test")
            .Endpoint(e =>
            {
                e.Endpoint(new IPEndPoint(IPAddress.Loopback, Port));
                if (login is not null)
                    e.AllowUnsecureAuthentication(true).AuthenticationRequired(true);
            })
            .Build();
        var services = new ServiceProvider();
        services.Add(new Filter(this));
        services.Add(new Store(this));
        if (login is not null)
            services.Add(new Login(this, login));
        _server = new SmtpServer.SmtpServer(options, services);
        _running = _server.StartAsync(_stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!CanConnect())
        {
            if (_running.IsFaulted || DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"SMTP stand-in did not start on port {Port}", _running.Exception);
            Thread.Sleep(10);
        }
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
        lock (_logGate)
            return File.Exists(path) ? File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!).ToList() : [];
    }

    private void Log(object entry)
    {
        lock (_logGate)
            File.AppendAllText(Path.Combine(Maildir, "log.ndjson"), JsonSerializer.Serialize(entry) + "\n");
    }

    private bool CanConnect()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static string Local(IMailbox m) => m.User.ToLowerInvariant();

    private sealed class Login(SmtpStandIn owner, Func<string, string, bool> answer) : IUserAuthenticator
    {
        public Task<bool> AuthenticateAsync(ISessionContext context, string user, string password, CancellationToken ct)
        {
            owner.Log(new { @event = "auth", user });
            return Task.FromResult(answer(user, password));
        }
    }

    private sealed class Filter(SmtpStandIn owner) : IMailboxFilter
    {
        public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken ct)
        {
            owner.Log(new { @event = "mail", session = context.SessionId.ToString() });
            return Task.FromResult(true);
        }

        public async Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken ct)
        {
            var address = $"{to.User}@{to.Host}";
            var local = Local(to);
            if (local == "slow")
                await Task.Delay(TimeSpan.FromSeconds(3), ct);
            if (local == "holdrcpt")
            {
                owner.Log(new { @event = "rcpt", address, reply = "holding" });
                await owner._releaseHeldData.Task.WaitAsync(ct);
            }
            bool firstTime;
            lock (owner._tempfailed)
                firstTime = local == "tempfail-once" && owner._tempfailed.Add(address);
            if (firstTime || local == "tempfail")
                Refuse(address, 451, new SmtpResponse(SmtpReplyCode.Aborted, firstTime ? "4.7.1 Greylisted, try again later" : "4.3.0 Temporary failure"));
            if (local == "reject")
                Refuse(address, 550, new SmtpResponse(SmtpReplyCode.MailboxUnavailable, $"5.1.1 <{address}>: Recipient address rejected: User unknown"));
            owner.Log(new { @event = "rcpt", address, reply = 250 });
            return true;
        }

        private void Refuse(string address, int reply, SmtpResponse response)
        {
            owner.Log(new { @event = "rcpt", address, reply });
            throw new SmtpResponseException(response);
        }
    }

    private sealed class Store(SmtpStandIn owner) : IMessageStore
    {
        public async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken ct)
        {
            var n = Interlocked.Increment(ref owner._count);
            var locals = transaction.To.Select(Local).ToList();
            if (locals.Contains("drop"))
            {
                owner.Log(new { @event = "data", n, reply = "dropped" });
                context.Pipe.Dispose(); // closes the connection: the client never hears a reply to its DATA
                throw new IOException("stand-in: connection dropped after DATA without a reply");
            }
            if (locals.Contains("tempfaildata"))
            {
                owner.Log(new { @event = "data", n, reply = 451 });
                return new SmtpResponse(SmtpReplyCode.Aborted, "4.3.0 Queue busy, try again later");
            }
            if (locals.Contains("rejectdata"))
            {
                owner.Log(new { @event = "data", n, reply = 554 });
                return new SmtpResponse(SmtpReplyCode.TransactionFailed, "5.7.1 Message refused by policy");
            }
            if (locals.Contains("holddata"))
            {
                owner.Log(new { @event = "data", n, reply = "holding" });
                await owner._releaseHeldData.Task.WaitAsync(ct);
            }
            await using (var file = File.Create(Path.Combine(owner.Maildir, $"{n}.eml")))
                foreach (var segment in buffer)
                    await file.WriteAsync(segment, ct);
            owner.Log(new { @event = "data", n, reply = 250 });
            return new SmtpResponse(SmtpReplyCode.Ok, $"2.0.0 Ok: queued as {n}");
        }
    }

    public void Dispose()
    {
        _releaseHeldData.TrySetResult();
        _server.Shutdown();
        _stop.Cancel();
        try { _running.Wait(TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { }
        _stop.Dispose();
    }
}

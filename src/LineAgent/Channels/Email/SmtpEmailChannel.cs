using System.Net.Sockets;
using System.Text.RegularExpressions;
using LineAgent.Lines;
using LineAgent.Messages;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace LineAgent.Channels.Email;

/// <summary>
/// Email through SMTP (MailKit). One connection is reused across a burst and recycled after any error.
/// Failures are sorted by what they prove: refused connections and 4xx replies mean the server does not
/// have the mail (retried); 5xx is a permanent "no" (failed with the server's reply); a connection lost
/// after the message data went out is ambiguous (failed `unconfirmed`, never retried).
/// </summary>
public sealed partial class SmtpEmailChannel(IOptions<EmailOptions> options, TimeProvider time, ILogger<SmtpEmailChannel> log)
    : IMessageChannel, IAsyncDisposable
{
    public const string ChannelName = "smtp";

    private readonly SemaphoreSlim _gate = new(1, 1);
    private SmtpClient? _client;
    private DateTimeOffset _lastUsed;
    private (DateTimeOffset At, ChannelHealth Health)? _health;

    public string Name => ChannelName;

    private SmtpOptions Smtp => options.Value.Smtp;

    public bool Handles(LineOptions line, string type) =>
        type == MessageType.Email && options.Value.IsConfigured && !string.IsNullOrWhiteSpace(line.Email.From);

    public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
    {
        MimeMessage message;
        try
        {
            message = Compose(request);
        }
        catch (ParseException e)
        {
            return new SendOutcome.Failed(FailureCodes.InvalidSender, $"Line '{request.Line.Id}' has an unreadable Email:From: {e.Message}", ProvenNotSent: true);
        }

        var waited = !_gate.Wait(0);
        if (waited && !await ChannelGate.EnterAsync(_gate, ct))
            return new SendOutcome.Deferred($"{Smtp.Host} is busy with another line's send", ChannelGate.RetryAfter);
        try
        {
            // It waited for another line's send (up to ChannelGate.MaxWait): an opt-out or a reply that came meanwhile
            // stops it before anything reaches the server (review: as for Messages).
            if (waited && await ChannelGate.WhyNotNowAsync(request, ct) is { } reason)
                return new SendOutcome.Deferred($"{reason}, while it waited for {Smtp.Host} (busy with another line's send); nothing was sent",
                    TimeSpan.FromSeconds(1));
            SmtpClient client;
            try
            {
                client = await ConnectedClientAsync(ct);
            }
            catch (AuthenticationException e) when (e.InnerException is SmtpCommandException { StatusCode: var code } && (int)code is >= 400 and < 500)
            {
                // 454 "Temporary authentication failure" (RFC 4954): the server's passing trouble, not a wrong login. Before
                // MAIL FROM, so nothing was sent; retried, and not held as a settings fault (review).
                await RecycleAsync();
                return new SendOutcome.Failed(FailureCodes.SmtpTemporaryFailure,
                    $"SMTP login to {Smtp.Host} was answered {(int)code} {e.InnerException.Message}: the server's temporary failure; nothing was sent.",
                    ProvenNotSent: true, Retryable: true, ChannelCode: (int)code, Outage: true);
            }
            catch (AuthenticationException e)
            {
                await RecycleAsync();
                return new SendOutcome.Failed(FailureCodes.SmtpAuthFailed, $"SMTP login to {Smtp.Host} failed: {e.Message}", ProvenNotSent: true);
            }
            catch (NotSupportedException e)
            {
                // MailKit: STARTTLS asked for and not offered, a user set and no AUTH offered. Before MAIL FROM: nothing was sent.
                await RecycleAsync();
                return new SendOutcome.Failed(FailureCodes.SmtpUnsupported,
                    $"{Smtp.Host}:{Smtp.Port} does not support what Email:Smtp asks for: {e.Message} Nothing was sent.", ProvenNotSent: true);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The attempt's time ran out (Resilience:AttemptTimeout) before MAIL FROM: nothing of the message reached the
                // server. Before, it escaped as a timeout and the message ended `unconfirmed`, "maybe sent" (review).
                await RecycleAsync();
                return new SendOutcome.Failed(FailureCodes.SmtpUnreachable,
                    $"{Smtp.Host}:{Smtp.Port} did not answer within the attempt's time while connecting; nothing was sent.", ProvenNotSent: true,
                    Retryable: true, Outage: true);
            }
            catch (Exception e) when (e is SocketException or IOException or SslHandshakeException or SmtpProtocolException or TimeoutException
                                          or SmtpCommandException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                await RecycleAsync();
                // Before MAIL FROM: nothing of this message reached the server (connect, TLS, EHLO). A server that answered its
                // greeting or EHLO with an error was reached: it refused the session ("Cannot reach" said otherwise: probe).
                var why = e is SmtpCommandException refused
                    ? $"{Smtp.Host}:{Smtp.Port} refused the session ({(int)refused.StatusCode} {e.Message}); nothing was sent."
                    : $"Cannot reach {Smtp.Host}:{Smtp.Port}: {e.Message}";
                return new SendOutcome.Failed(FailureCodes.SmtpUnreachable, why, ProvenNotSent: true, Retryable: true,
                    ChannelCode: e is SmtpCommandException c ? (int)c.StatusCode : null, Outage: true);
            }

            var progress = new DataProgress();
            try
            {
                var reply = await client.SendAsync(message, ct, progress);
                _lastUsed = time.GetUtcNow();
                log.LogDebug("SMTP accepted {MessageId}: {Reply}", message.MessageId, reply);
                return new SendOutcome.Sent($"<{message.MessageId}>", time.GetUtcNow());
            }
            catch (SmtpCommandException e)
            {
                var status = (int)e.StatusCode;
                await RecycleAsync();
                var text = $"{status} {e.Message}".Trim();
                if (status >= 500)
                    return new SendOutcome.Failed(FailureCodes.SmtpRejected, $"The server refused the message: {text}", ProvenNotSent: true, ChannelCode: status);
                // An explicit 4xx reply: the server does not have the mail and asks to try later. Retried only before the
                // message data (DESIGN: "SMTP 4xx before DATA"); a 4xx to the data itself is left to whoever retries it.
                return progress.Started
                    ? new SendOutcome.Failed(FailureCodes.SmtpTemporaryFailure,
                        $"The server deferred the message after receiving its data: {text}; not resent automatically.", ProvenNotSent: true,
                        Retryable: false, ChannelCode: status)
                    : new SendOutcome.Failed(FailureCodes.SmtpTemporaryFailure, $"The server deferred the message: {text}", ProvenNotSent: true,
                        Retryable: true, ChannelCode: status);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The attempt's time ran out mid-transaction: before the message data nothing was sent (a server slow to answer
                // RCPT, a tarpit), after it the server may have it. Before, both ended `unconfirmed` (review).
                await RecycleAsync();
                return progress.Started
                    ? new SendOutcome.Failed(FailureCodes.Unconfirmed,
                        $"{Smtp.Host} did not finish within the attempt's time after the message data was sent; the server may have it, so it is not sent again.",
                        ProvenNotSent: false)
                    : new SendOutcome.Failed(FailureCodes.SmtpUnreachable,
                        $"{Smtp.Host} did not answer within the attempt's time, before the message data; nothing was sent.", ProvenNotSent: true, Retryable: true);
            }
            catch (Exception e) when (e is SmtpProtocolException or IOException or SocketException or TimeoutException
                                          or OperationCanceledException && !ct.IsCancellationRequested)
            {
                await RecycleAsync();
                return progress.Started
                    ? new SendOutcome.Failed(FailureCodes.Unconfirmed,
                        $"The connection to {Smtp.Host} was lost after the message data was sent ({e.Message}); the server may have it, so it is not sent again.",
                        ProvenNotSent: false)
                    : new SendOutcome.Failed(FailureCodes.SmtpUnreachable, $"The connection to {Smtp.Host} failed before the message data: {e.Message}",
                        ProvenNotSent: true, Retryable: true);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>SMTP leaves no trace to look up after a restart.</summary>
    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<ReconcileOutcome>(new ReconcileOutcome.Unknown("SMTP has no record to check"));

    /// <summary>How long a health check may take to connect (and log in): it holds the connection a send would use.</summary>
    public static readonly TimeSpan HealthCheckLimit = TimeSpan.FromSeconds(10);

    public async Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(line.Email.From))
            return new ChannelHealth(Name, ChannelHealth.Unavailable, $"Line '{line.Id}' has no Email:From.");
        if (_health is { } h && time.GetUtcNow() - h.At < TimeSpan.FromMinutes(1))
            return h.Health;
        ChannelHealth health;
        await _gate.WaitAsync(ct);
        // The check holds the connection's gate, and a send waits behind it: bounded well below Email:Smtp:Timeout (probe L:
        // a server that took the connection and never greeted held a send 30 s behind the check, then the send's own 30 s).
        var limit = Smtp.Timeout < HealthCheckLimit ? Smtp.Timeout : HealthCheckLimit;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(limit);
        try
        {
            await ConnectedClientAsync(bounded.Token);
            health = new ChannelHealth(Name, ChannelHealth.Ok, $"{Smtp.Host}:{Smtp.Port}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await RecycleAsync();
            health = new ChannelHealth(Name, ChannelHealth.Unavailable, $"{Smtp.Host}:{Smtp.Port}: no answer within {limit.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await RecycleAsync();
            health = new ChannelHealth(Name, ChannelHealth.Unavailable, $"{Smtp.Host}:{Smtp.Port}: {e.Message}");
        }
        finally
        {
            _gate.Release();
        }
        _health = (time.GetUtcNow(), health);
        return health;
    }

    internal MimeMessage Compose(SendRequest request)
    {
        var m = request.Message;
        var from = MailboxAddress.Parse(request.Line.Email.From!);
        var message = new MimeMessage();
        message.From.Add(from);
        message.To.Add(new MailboxAddress(m.RecipientName ?? "", m.RecipientEmail ?? throw new InvalidOperationException($"{m.Id} has no email address")));
        message.Subject = m.Subject ?? request.Line.Email.DefaultSubject ?? "";
        message.MessageId = $"{m.Id}@{from.Domain}";
        message.Date = time.GetUtcNow();
        var body = new BodyBuilder();
        if (LooksLikeHtml(m.Content))
        {
            body.HtmlBody = m.Content;
            body.TextBody = HtmlToText(m.Content);
        }
        else
        {
            body.TextBody = m.Content;
        }
        message.Body = body.ToMessageBody();
        return message;
    }

    private async Task<SmtpClient> ConnectedClientAsync(CancellationToken ct)
    {
        if (_client is { IsConnected: true } existing)
        {
            if (time.GetUtcNow() - _lastUsed < Smtp.IdleTimeout)
            {
                try
                {
                    await existing.NoOpAsync(ct);
                    return existing;
                }
                catch (Exception e) when (e is IOException or SmtpProtocolException or SmtpCommandException or SocketException)
                {
                    log.LogDebug("SMTP connection went stale: {Error}", e.Message);
                }
            }
            await RecycleAsync();
        }
        var client = new SmtpClient { Timeout = (int)Smtp.Timeout.TotalMilliseconds };
        try
        {
            var security = Smtp.Security switch
            {
                SmtpSecurity.None => SecureSocketOptions.None,
                SmtpSecurity.StartTls => SecureSocketOptions.StartTls,
                SmtpSecurity.SslOnConnect => SecureSocketOptions.SslOnConnect,
                _ => SecureSocketOptions.Auto,
            };
            await client.ConnectAsync(Smtp.Host!, Smtp.Port, security, ct);
            if (!string.IsNullOrEmpty(Smtp.User))
                await client.AuthenticateAsync(Smtp.User, Smtp.Password ?? "", ct);
        }
        catch
        {
            client.Dispose();
            throw;
        }
        _client = client;
        _lastUsed = time.GetUtcNow();
        return client;
    }

    private async Task RecycleAsync()
    {
        var client = _client;
        _client = null;
        if (client is null)
            return;
        try
        {
            if (client.IsConnected)
                await client.DisconnectAsync(quit: true, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e)
        {
            log.LogDebug("SMTP disconnect: {Error}", e.Message);
        }
        client.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        // A send still holding the connection (the dispatcher cuts those at Agent:ShutdownTimeout, and waits 3 s for what they
        // then are) is not waited for without end: the process would not exit while a server held its reply (probe N). 25 +
        // 3 + 1 s stay within launchd's ExitTimeOut of 30.
        var entered = await _gate.WaitAsync(DisposeWait);
        try { await RecycleAsync(); }
        finally
        {
            if (entered)
                _gate.Release();
        }
    }

    private static readonly TimeSpan DisposeWait = TimeSpan.FromSeconds(1);

    [GeneratedRegex(@"<(html|body|p|br|div|a|b|i|strong|em|table|tr|td|ul|ol|li|h[1-6]|span|img)\b[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex HtmlTag();

    [GeneratedRegex(@"<[^>]+>")]
    private static partial Regex AnyTag();

    public static bool LooksLikeHtml(string content) => HtmlTag().IsMatch(content);

    private static string HtmlToText(string html) =>
        System.Net.WebUtility.HtmlDecode(AnyTag().Replace(Regex.Replace(html, @"<(br|/p|/div|/li|/h[1-6])\b[^>]*>", "\n", RegexOptions.IgnoreCase), ""))
            .Trim();

    /// <summary>Notices the first byte of message data, which splits "never sent" from "maybe received".</summary>
    private sealed class DataProgress : ITransferProgress
    {
        public bool Started { get; private set; }
        public void Report(long bytesTransferred, long totalSize) => Started |= bytesTransferred > 0;
        public void Report(long bytesTransferred) => Started |= bytesTransferred > 0;
    }
}

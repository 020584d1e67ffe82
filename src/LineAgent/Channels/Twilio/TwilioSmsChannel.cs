using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Suppressions;
using Microsoft.Extensions.Options;
using Twilio.Clients;
using Twilio.Exceptions;
using Twilio.Http;
using Twilio.Rest.Api.V2010;
using Twilio.Rest.Api.V2010.Account;
using Twilio.Types;

namespace LineAgent.Channels.Twilio;

/// <summary>
/// SMS through Twilio's Messages API for lines whose `Sms:Via` is `twilio`. The SDK has no base URL
/// setting, so its HttpClient goes through a handler that sends api.twilio.com requests to Twilio:BaseUrl.
/// </summary>
public sealed class TwilioSmsChannel : IMessageChannel, IDisposable
{
    public const string ChannelName = "twilio";

    private readonly TwilioOptions _options;
    private readonly SuppressionList _suppressions;
    private readonly TimeProvider _time;
    // Made with the client (below): an agent without Twilio never loads the HTTP client stack either.
    private System.Net.Http.HttpClient? _http;
    private (DateTimeOffset At, ChannelHealth Health)? _health;

    public TwilioSmsChannel(IOptions<TwilioOptions> options, SuppressionList suppressions, TimeProvider time)
    {
        _options = options.Value;
        _suppressions = suppressions;
        _time = time;
    }

    public string Name => ChannelName;

    public ChannelCapabilities Capabilities { get; } = new(ConfirmsLater: true, SettledOnAccept: true);

    /// <summary>Twilio:AccountSid and AuthToken are set. Checked instead of <see cref="Client"/> by code that runs on every agent.</summary>
    public bool IsConfigured => _options.IsConfigured;

    // The client is made on first use and typed object here, so an agent without Twilio never loads Twilio.dll (about 1.5 MB
    // of memory, and the JIT of what it touches): no method that runs without Twilio names a Twilio type.
    private object? _client;

    /// <summary>Null when Twilio is not configured.</summary>
    public ITwilioRestClient? Client
    {
        get
        {
            if (!IsConfigured)
                return null;
            // The pollers, a send and the health check may ask at once: one client, one HttpClient (disposed with the channel).
            lock (_clientGate)
                return (ITwilioRestClient)(_client ??= NewClient());
        }
    }

    private readonly Lock _clientGate = new();

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private object NewClient()
    {
        _http ??= new System.Net.Http.HttpClient(new BaseUrlHandler(new Uri(_options.BaseUrl)) { InnerHandler = NewHandler(_options.Timeout) })
        {
            Timeout = _options.Timeout,
        };
        return new TwilioRestClient(_options.AccountSid, _options.AuthToken, accountSid: _options.AccountSid, httpClient: new SystemNetHttpClient(_http));
    }

    /// <summary>
    /// No redirects: a POST that a proxy redirects becomes a GET of the Messages list, which the SDK read as an accepted send
    /// without a SID (black-box probe); the create URL answers itself or the send fails saying where it was sent. A connection
    /// that was never made (refused, timed out, no TLS) is marked (<see cref="NotConnectedException"/>), and gives up in half
    /// of Twilio:Timeout at most, so a connect that hangs is told apart from a request that reached Twilio and then went
    /// unanswered: only the second may have been sent (probe: a connect timeout and a TLS failure failed `unconfirmed`).
    /// </summary>
    internal static SocketsHttpHandler NewHandler(TimeSpan timeout) => new()
    {
        AllowAutoRedirect = false,
        ConnectTimeout = timeout > TimeSpan.Zero ? timeout / 2 : Timeout.InfiniteTimeSpan,
        ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (Exception e)
            {
                socket.Dispose();
                throw new NotConnectedException($"No connection to {context.DnsEndPoint.Host}:{context.DnsEndPoint.Port}: {e.Message}", e);
            }
        },
    };

    /// <summary>The answer was a redirect, which is not followed (<see cref="BaseUrlHandler"/>).</summary>
    internal sealed class RedirectNotFollowedException(string message) : HttpRequestException(message);

    /// <summary>The connection for a request was never made: nothing of the request left this Mac.</summary>
    internal sealed class NotConnectedException(string message, Exception inner) : IOException(message, inner);

    public bool Handles(LineOptions line, string type) =>
        type == MessageType.Sms && line.Sms.Enabled && line.Sms.Via == SmsLineOptions.ViaTwilio && IsConfigured
        && (!string.IsNullOrWhiteSpace(line.Sms.From) || !string.IsNullOrWhiteSpace(line.Sms.MessagingServiceSid));

    public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
    {
        var m = request.Message;
        var create = new CreateMessageOptions(new PhoneNumber(m.RecipientPhone)) { Body = m.Content };
        if (!string.IsNullOrWhiteSpace(request.Line.Sms.MessagingServiceSid))
            create.MessagingServiceSid = request.Line.Sms.MessagingServiceSid;
        else
            create.From = new PhoneNumber(request.Line.Sms.From);
        // The HTTP status of Twilio's answer, for an error body the SDK cannot read (it then says status 0).
        var answered = ResponseStatus.Value = new Answer();
        try
        {
            var created = await MessageResource.CreateAsync(create, Client);
            if (Redirected(answered) is { } redirected)
                return redirected;
            if (string.IsNullOrEmpty(created?.Sid))
                // A 2xx that is not Twilio's message resource ({} from a gateway): something took the request; no SID to follow.
                return new SendOutcome.Failed(FailureCodes.Unconfirmed,
                    $"{_options.BaseUrl} answered HTTP {answered.Status} without a message SID (not Twilio's answer?); it may have been processed, so it is not sent again.",
                    ProvenNotSent: false);
            return created.Status == MessageResource.StatusEnum.Failed || created.Status == MessageResource.StatusEnum.Undelivered
                ? new SendOutcome.Failed(FailureCodes.TwilioFailed, $"Twilio: {created.ErrorCode} {created.ErrorMessage}".Trim(), ProvenNotSent: false, ChannelCode: created.ErrorCode)
                : new SendOutcome.Accepted(created.Sid);
        }
        catch (ApiException e)
        {
            return Redirected(answered) ?? await FromApiErrorAsync(e, answered.Status, m, ct);
        }
        catch (ApiConnectionException e)
        {
            if (Redirected(answered) is { } redirected)
                return redirected;
            return NeverReachedTwilio(e)
                ? new SendOutcome.Failed(FailureCodes.TwilioUnreachable, $"Cannot reach Twilio at {_options.BaseUrl}: {WhyNotConnected(e)}", ProvenNotSent: true, Retryable: true,
                    Outage: true)
                : new SendOutcome.Failed(FailureCodes.Unconfirmed,
                    $"Twilio did not answer after receiving the request ({Innermost(e).Message}); it may have been sent, so it is not sent again.",
                    ProvenNotSent: false);
        }
    }

    /// <summary>
    /// A redirect (not followed): the server that answered did not take the message, so nothing was sent; the URL is the same
    /// for every message, so it is the channel's fault, like a create URL that is not found.
    /// </summary>
    private SendOutcome? Redirected(Answer answered) => answered.Status switch
    {
        // "See Other" after a POST: the server says it processed the request and where the result is.
        (int)HttpStatusCode.SeeOther => new SendOutcome.Failed(FailureCodes.Unconfirmed,
            $"{_options.BaseUrl} answered HTTP 303 (See Other){(answered.Location is { } at ? $" pointing to {Shorten(at)}" : "")}: it may have processed the " +
            "request, so it is not sent again. Set Twilio:BaseUrl to where Twilio's API answers.", ProvenNotSent: false),
        >= 300 and < 400 => new SendOutcome.Failed(FailureCodes.TwilioEndpointNotFound,
            $"{_options.BaseUrl} answered HTTP {answered.Status} ({(HttpStatusCode)answered.Status}), a redirect{(answered.Location is { } to ? $" to {Shorten(to)}" : "")}, " +
            "to the Messages API's create URL; redirects are not followed for a send, so nothing was sent. Set Twilio:BaseUrl to where the Messages API answers (https?).",
            ProvenNotSent: true),
        _ => null,
    };

    private async Task<SendOutcome> FromApiErrorAsync(ApiException e, int httpStatus, MessageRow m, CancellationToken ct)
    {
        // An error body the SDK could not read as Twilio's JSON leaves Status and Code 0. A 4xx page (a proxy's or
        // firewall's page, a Twilio:BaseUrl that is no Twilio API) refused the request, so nothing was sent, as with
        // Twilio's own 4xx. As there: 401 and 407 (a proxy that wants a login) are the path's, a channel fault that counts
        // towards the circuit; so are 404 and 405, which say the Messages API is not at that URL (a wrong BaseUrl: it
        // failed each message `twilio_rejected` alone, and a bulk one message at a time); 429 is a rate limit, retried;
        // any other (403, 413: possibly this request only, for its text or size) fails this message alone, not retried.
        // A 5xx page (a proxy's 502/503/504) or no status at all: the request reached something and may have been created.
        if (e.Status == 0 && httpStatus is >= 400 and < 500)
        {
            var refused = $"{_options.BaseUrl} answered HTTP {httpStatus} ({(HttpStatusCode)httpStatus}) with a page that is not Twilio's " +
                $"(a proxy or firewall?): {Shorten(e.Message)}; the request was refused, so nothing was sent.";
            return httpStatus switch
            {
                (int)HttpStatusCode.TooManyRequests => new SendOutcome.Failed(FailureCodes.TwilioRateLimited, refused, ProvenNotSent: true, Retryable: true, Outage: true),
                (int)HttpStatusCode.Unauthorized or (int)HttpStatusCode.ProxyAuthenticationRequired =>
                    new SendOutcome.Failed(FailureCodes.TwilioAuthFailed, $"{refused} Check the proxy, Twilio:BaseUrl and Twilio:AccountSid/AuthToken.", ProvenNotSent: true),
                (int)HttpStatusCode.NotFound or (int)HttpStatusCode.MethodNotAllowed =>
                    new SendOutcome.Failed(FailureCodes.TwilioEndpointNotFound, $"{refused} The Messages API is not there: check Twilio:BaseUrl and the proxy.", ProvenNotSent: true),
                _ => new SendOutcome.Failed(FailureCodes.TwilioRejected, refused, ProvenNotSent: true),
            };
        }
        if (e.Status == 0)
            return new SendOutcome.Failed(FailureCodes.Unconfirmed,
                $"Twilio answered with an error that is not Twilio's ({Shorten(e.Message)}); it may have been processed, so it is not sent again.",
                ProvenNotSent: false);
        var text = $"Twilio {e.Code}: {e.Message}";
        switch (e.Code)
        {
            case 21211:
                return new SendOutcome.Failed(FailureCodes.InvalidRecipient, text, ProvenNotSent: true, ChannelCode: e.Code);
            case 21610:
                await _suppressions.AddAsync(m.RecipientPhone!, "Twilio 21610: the recipient replied STOP to this number", SuppressionList.Sources.Twilio, m.Id, ct);
                return new SendOutcome.Failed(FailureCodes.Suppressed, text, ProvenNotSent: true, ChannelCode: e.Code);
            case 20429:
                return new SendOutcome.Failed(FailureCodes.TwilioRateLimited, text, ProvenNotSent: true, Retryable: true, ChannelCode: e.Code, Outage: true);
            // The line's sender refused: 21212 invalid From, 21603 From missing, 21659 From not a Twilio number, 21660 From
            // of another account. Every send of the line would meet it: the line is held (ChannelResilience.IsLineSettingsFault)
            // instead of failing a bulk one message at a time. Not 21606 ("not a valid, message-capable Twilio phone number
            // for this destination"): it can be the destination's, and a held message to such a country would be the
            // line's trial for ever (review); it fails that message alone, as twilio_rejected.
            case 21212 or 21603 or 21659 or 21660:
                return new SendOutcome.Failed(FailureCodes.InvalidSender,
                    $"{text} (check Lines:*:Sms:From or Sms:MessagingServiceSid of line '{m.LineId}')", ProvenNotSent: true, ChannelCode: e.Code);
        }
        if (e.Status == (int)HttpStatusCode.TooManyRequests)
            return new SendOutcome.Failed(FailureCodes.TwilioRateLimited, text, ProvenNotSent: true, Retryable: true, ChannelCode: e.Code, Outage: true);
        // The create URL itself not found, in JSON: a gateway's own 404 ({"message":"no Route matched"}), a 405, or
        // Twilio's 20404 behind a proxy with a wrong path prefix. The URL is the same for every message: the channel's
        // fault, like an HTML 404 page above (the review of 717e5cf found these still failing `twilio_rejected` one by one).
        if (e.Status is (int)HttpStatusCode.NotFound or (int)HttpStatusCode.MethodNotAllowed)
            return new SendOutcome.Failed(FailureCodes.TwilioEndpointNotFound,
                $"{_options.BaseUrl} answered HTTP {e.Status} ({text}) to the Messages API's create URL; nothing was sent. " +
                "The Messages API is not there: check Twilio:BaseUrl and the proxy.", ProvenNotSent: true, ChannelCode: e.Code == 0 ? null : e.Code);
        if (e.Status >= 500)
            return new SendOutcome.Failed(FailureCodes.Unconfirmed,
                $"Twilio answered {e.Status} after receiving the request ({text}); it may have been processed, so it is not sent again.",
                ProvenNotSent: false, ChannelCode: e.Code);
        if (e.Status is 401 or 403)
            return new SendOutcome.Failed(FailureCodes.TwilioAuthFailed, $"{text} (check Twilio:AccountSid and Twilio:AuthToken)", ProvenNotSent: true, ChannelCode: e.Code);
        return new SendOutcome.Failed(FailureCodes.TwilioRejected, text, ProvenNotSent: true, ChannelCode: e.Code);
    }

    /// <summary>
    /// Set by a send to a box of its own; <see cref="BaseUrlHandler"/> writes each response's status into it. The box is
    /// the send's alone (an async-local value flows into the SDK's calls, and the box is shared by reference), so
    /// concurrent sends and the pollers never see each other's.
    /// </summary>
    private static readonly AsyncLocal<Answer?> ResponseStatus = new();

    /// <summary>The HTTP status of the last answer, and where a redirect pointed.</summary>
    internal sealed class Answer
    {
        public int Status;
        public string? Location;
    }

    private static string Shorten(string s) => s.Length <= 300 ? s : s[..300] + "…";

    /// <summary>
    /// True only when no connection carried the request: it failed to connect (<see cref="NotConnectedException"/>), or
    /// before the request was written (the name, the TLS handshake, a proxy's tunnel).
    /// </summary>
    internal static bool NeverReachedTwilio(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            // Not a bare SocketException: every connect goes through the ConnectCallback, which marks its failures, so one
            // without the mark came from a connection already made, after the request may have been written (review).
            if (x is NotConnectedException
                || x is HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError })
                return true;
        return false;
    }

    /// <summary>The connect's own words ("No connection to host:port: ..."), else the innermost error's.</summary>
    private static string WhyNotConnected(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is NotConnectedException n)
                return n.Message;
        return Innermost(e).Message;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    /// <summary>After a restart: with a SID the status poller settles it; without one the request may or may not have reached Twilio.</summary>
    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<ReconcileOutcome>(request.Message.ChannelRef is not null
            ? new ReconcileOutcome.Pending()
            : new ReconcileOutcome.Unknown("the Twilio request may have been made before the restart"));

    public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct) =>
        IsConfigured
            ? CheckConfiguredHealthAsync(line, ct)
            : Task.FromResult(new ChannelHealth(Name, ChannelHealth.Unavailable, "Twilio:AccountSid and Twilio:AuthToken are not set."));

    private async Task<ChannelHealth> CheckConfiguredHealthAsync(LineOptions line, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(line.Sms.From) && string.IsNullOrWhiteSpace(line.Sms.MessagingServiceSid))
            return new ChannelHealth(Name, ChannelHealth.Unavailable, $"Line '{line.Id}' has neither Sms:From nor Sms:MessagingServiceSid.");
        if (_health is { } h && _time.GetUtcNow() - h.At < TimeSpan.FromMinutes(5))
            return h.Health;
        ChannelHealth health;
        var answered = ResponseStatus.Value = new Answer();
        try
        {
            var account = await AccountResource.FetchAsync(_options.AccountSid, Client);
            health = new ChannelHealth(Name, account.Status == AccountResource.StatusEnum.Active ? ChannelHealth.Ok : ChannelHealth.Unavailable,
                $"account {account.FriendlyName} ({account.Status})");
        }
        catch (ApiException e) when ((e.Status != 0 ? e.Status : answered.Status) is (int)HttpStatusCode.NotFound or (int)HttpStatusCode.MethodNotAllowed)
        {
            health = new ChannelHealth(Name, ChannelHealth.Unavailable,
                $"{_options.BaseUrl} answered HTTP {(e.Status != 0 ? e.Status : answered.Status)} for account {_options.AccountSid} ({Shorten(e.Message)}): " +
                "Twilio's API is not there; check Twilio:BaseUrl and any proxy in between, and Twilio:AccountSid.");
        }
        catch (ApiException e)
        {
            health = new ChannelHealth(Name, ChannelHealth.Unavailable, $"Twilio {e.Status} {e.Code}: {e.Message}");
        }
        catch (ApiConnectionException e)
        {
            health = new ChannelHealth(Name, ChannelHealth.Unavailable, answered.Status is >= 300 and < 400
                ? Innermost(e).Message
                : $"Cannot reach Twilio: {WhyNotConnected(e)}");
        }
        _health = (_time.GetUtcNow(), health);
        return health;
    }

    public void Dispose() => _http?.Dispose();

    /// <summary>
    /// Where the SDK's requests go. A base URL on Twilio itself (the default https://api.twilio.com, or a regional edge
    /// such as api.dublin.ie1.twilio.com) keeps each product's host and moves it to the same edge and region
    /// (messaging.twilio.com → messaging.dublin.ie1.twilio.com), as the SDK's Edge and Region settings do: credentials
    /// are per region, and messaging's paths do not exist on the API host. Any other base URL (a stand-in, a proxy)
    /// gets every Twilio host.
    /// </summary>
    internal sealed class BaseUrlHandler(Uri baseUrl) : DelegatingHandler
    {
        private const string Domain = "twilio.com";

        private static string Bare(string host) => host.TrimEnd('.');

        private static bool IsTwilioHost(string host) =>
            Bare(host).Equals(Domain, StringComparison.OrdinalIgnoreCase) || Bare(host).EndsWith("." + Domain, StringComparison.OrdinalIgnoreCase);

        /// <summary>"dublin.ie1.twilio.com" for a base api.dublin.ie1.twilio.com, "twilio.com" for the default; null off Twilio.</summary>
        private readonly string? _edgeDomain = IsTwilioHost(baseUrl.IdnHost) && Bare(baseUrl.IdnHost).StartsWith("api.", StringComparison.OrdinalIgnoreCase)
            ? Bare(baseUrl.IdnHost)["api.".Length..]
            : IsTwilioHost(baseUrl.IdnHost) ? Domain : null;

        /// <summary>Where a request for <paramref name="uri"/> goes.</summary>
        internal Uri Target(Uri uri)
        {
            if (!IsTwilioHost(uri.IdnHost))
                return uri;
            if (_edgeDomain is not null)
            {
                // product.twilio.com → product.{edge.region.}twilio.com; the path and query stay as they are.
                var host = Bare(uri.IdnHost);
                var product = host.Length > Domain.Length ? host[..^(Domain.Length + 1)] : "";
                var target = product.Length == 0 ? _edgeDomain : $"{product}.{_edgeDomain}";
                return target.Equals(host, StringComparison.OrdinalIgnoreCase) ? uri : new UriBuilder(uri) { Host = target }.Uri;
            }
            var path = baseUrl.AbsolutePath.TrimEnd('/') + uri.AbsolutePath;
            return new UriBuilder(baseUrl.Scheme, baseUrl.Host, baseUrl.Port) { Path = path, Query = uri.Query.TrimStart('?') }.Uri;
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            if (request.RequestUri is { } uri)
                request.RequestUri = Target(uri);
            var response = await base.SendAsync(request, ct);
            if (ResponseStatus.Value is { } answered)
            {
                answered.Status = (int)response.StatusCode;
                answered.Location = response.Headers.Location?.ToString();
            }
            // The SDK takes any status below 400 as Twilio's answer: a redirect's empty body read as a null resource (a
            // NullReferenceException in the health check and the status poller) or as unreadable JSON (review). A redirect
            // is not followed, and is said as such, for every request.
            if ((int)response.StatusCode is >= 300 and < 400)
            {
                var status = (int)response.StatusCode;
                var to = response.Headers.Location;
                response.Dispose();
                throw new RedirectNotFollowedException(
                    $"{request.RequestUri?.GetLeftPart(UriPartial.Path)} answered HTTP {status} ({(HttpStatusCode)status}), a redirect{(to is null ? "" : $" to {to}")}; " +
                    "redirects are not followed: set Twilio:BaseUrl to where Twilio's API answers (https?).");
            }
            return response;
        }
    }
}

using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace LineAgent.Webhooks;

/// <summary>Turns a host name into addresses. Injectable so tests can make a name resolve differently over time.</summary>
public interface IWebhookResolver
{
    Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct);
}

public sealed class DnsWebhookResolver : IWebhookResolver
{
    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct) => Dns.GetHostAddressesAsync(host, ct);
}

public enum TargetKind { Public, Loopback, Private, Forbidden }

/// <summary>A connection the guard would not open; its message names the address and why.</summary>
public sealed class WebhookTargetRefusedException(string message) : Exception(message);

/// <summary>
/// Where webhooks may go (SSRF guard). Checked when a subscription is created (the URL, and every address its
/// name resolves to) and again for every connection the sender opens (<see cref="ConnectAsync"/> resolves the
/// name itself and checks each address it dials), so a name that later resolves elsewhere (DNS rebinding) or a
/// redirect (not followed anyway) cannot reach what creation refused.
/// </summary>
public sealed class WebhookTargetGuard(IWebhookResolver resolver, IOptions<WebhookOptions> options)
{
    private static readonly IPAddress MetadataV4 = IPAddress.Parse("169.254.169.254");
    private static readonly IPAddress MetadataV6 = IPAddress.Parse("fd00:ec2::254");
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(10);

    /// <summary>What kind of destination an address is; IPv4 embedded in IPv6 (mapped, compatible, NAT64) is judged as the IPv4.</summary>
    public static (TargetKind Kind, string What) Classify(IPAddress ip)
    {
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (ip.Equals(IPAddress.IPv6Any))
                return (TargetKind.Forbidden, "the unspecified address");
            if (ip.Equals(IPAddress.IPv6Loopback))
                return (TargetKind.Loopback, "a loopback address");
            if (EmbeddedIPv4(ip) is { } v4)
            {
                var (kind, what) = Classify(v4);
                return (kind, $"{what} (IPv4 {v4} written as IPv6)");
            }
            var b = ip.GetAddressBytes();
            if (new IPAddress(b).Equals(MetadataV6))
                return (TargetKind.Forbidden, "the cloud metadata address");
            if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
                return (TargetKind.Forbidden, "a link-local address (fe80::/10)");
            if (b[0] == 0xff)
                return (TargetKind.Forbidden, "a multicast address (ff00::/8)");
            if ((b[0] & 0xfe) == 0xfc)
                return (TargetKind.Private, "a private address (fc00::/7)");
            if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
                return (TargetKind.Private, "a site-local address (fec0::/10)");
            return (TargetKind.Public, "a public address");
        }
        if (ip.AddressFamily != AddressFamily.InterNetwork)
            return (TargetKind.Forbidden, "not an IP address");
        var a = ip.GetAddressBytes();
        return (a[0], a[1]) switch
        {
            (0, _) => (TargetKind.Forbidden, "the unspecified network (0.0.0.0/8)"),
            (169, 254) when ip.Equals(MetadataV4) => (TargetKind.Forbidden, "the cloud metadata address"),
            (169, 254) => (TargetKind.Forbidden, "a link-local address (169.254.0.0/16)"),
            (>= 224 and <= 239, _) => (TargetKind.Forbidden, "a multicast address (224.0.0.0/4)"),
            (255, 255) when a[2] == 255 && a[3] == 255 => (TargetKind.Forbidden, "the broadcast address"),
            (>= 240, _) => (TargetKind.Forbidden, "a reserved address (240.0.0.0/4)"),
            (127, _) => (TargetKind.Loopback, "a loopback address"),
            (10, _) => (TargetKind.Private, "a private address (10.0.0.0/8)"),
            (172, >= 16 and <= 31) => (TargetKind.Private, "a private address (172.16.0.0/12)"),
            (192, 168) => (TargetKind.Private, "a private address (192.168.0.0/16)"),
            (100, >= 64 and <= 127) => (TargetKind.Private, "a shared (carrier-grade NAT) address (100.64.0.0/10)"),
            (198, 18 or 19) => (TargetKind.Private, "a benchmarking-network address (198.18.0.0/15)"),
            (192, 0) when a[2] == 0 => (TargetKind.Private, "an IETF protocol address (192.0.0.0/24)"),
            _ => (TargetKind.Public, "a public address"),
        };
    }

    /// <summary>The IPv4 address inside ::ffff:a.b.c.d, ::a.b.c.d, ::ffff:0:a.b.c.d, 64:ff9b::a.b.c.d, 64:ff9b:1::a.b.c.d, 6to4 and Teredo; null for other IPv6.</summary>
    private static IPAddress? EmbeddedIPv4(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6)
            return ip.MapToIPv4();
        var b = ip.GetAddressBytes();
        bool Zero(int from, int to) => b.AsSpan(from, to - from).IndexOfAnyExcept((byte)0) < 0;
        var compatible = Zero(0, 12);
        var translated = Zero(0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0;
        var nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && Zero(4, 12);
        // RFC 8215's local-use NAT64 prefix 64:ff9b:1::/48, as deployed with a /96 (the IPv4 in the last 32 bits).
        var localNat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0x00 && b[5] == 0x01 && Zero(6, 12);
        if (compatible || translated || nat64 || localNat64)
            return new IPAddress(b.AsSpan(12, 4));
        // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 reaches the IPv4 AA.BB.CC.DD through a relay.
        if (b[0] == 0x20 && b[1] == 0x02)
            return new IPAddress(b.AsSpan(2, 4));
        // Teredo (RFC 4380): 2001:0::/32; the client's IPv4 is the last 32 bits, inverted.
        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
            return new IPAddress(b.AsSpan(12, 4).ToArray().Select(x => (byte)~x).ToArray());
        return null;
    }

    /// <summary>Null when the address may be dialled; otherwise a sentence naming it and why not.</summary>
    public string? Refusal(IPAddress ip)
    {
        var (kind, what) = Classify(ip);
        var o = options.Value;
        return kind switch
        {
            TargetKind.Public => null,
            TargetKind.Loopback when o.AllowLoopbackTargets => null,
            TargetKind.Private when o.AllowPrivateTargets => null,
            TargetKind.Loopback => $"{ip} is {what}, refused because Webhooks:AllowLoopbackTargets is false.",
            TargetKind.Private => $"{ip} is {what}, refused unless Webhooks:AllowPrivateTargets is true.",
            _ => $"{ip} is {what}, which webhooks are never sent to.",
        };
    }

    /// <summary>Longer URLs are refused: the receiver's own servers refuse them too, and the URL is in every delivery log line.</summary>
    public const int MaxUrlLength = 2_048;

    /// <summary>What is wrong with the URL itself (no DNS): scheme, credentials, host spelling. Null when nothing.</summary>
    public static string? UrlProblem(string? url, out Uri? uri)
    {
        uri = null;
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
            return "url must be an absolute http(s) URL.";
        if (u.GetComponents(UriComponents.UserInfo | UriComponents.KeepDelimiter, UriFormat.UriEscaped).Length > 0)
            return "url must not carry credentials (a user name or password before the host); the receiver can check the webhook signature instead.";
        var host = HostOf(u);
        if (host.Length == 0)
            return "url has no host.";
        switch (u.HostNameType)
        {
            case UriHostNameType.IPv4:
                // System.Uri turns 2130706433, 0x7f.1 and 0177.0.0.1 into 127.0.0.1: such spellings are refused, not rewritten.
                if (!CanonicalIPv4Regex(Regex.Escape(u.Host)).IsMatch(u.OriginalString))
                    return $"url spells its IPv4 host in decimal, octal or hex; write it as {u.Host} (dotted decimal).";
                break;
            case UriHostNameType.IPv6:
                break;
            case UriHostNameType.Dns:
                // A name whose last label is a number is an IPv4 spelling some resolvers accept (1.2.3.4.5, 0x7f): never a real name.
                var last = host.TrimEnd('.').Split('.')[^1];
                if (last.Length > 0 && (last.All(char.IsAsciiDigit) || (last.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && last[2..].All(char.IsAsciiHexDigit))))
                    return "url host looks like a number but is not an IPv4 address.";
                break;
            default:
                return "url must have a DNS name or an IP address as its host.";
        }
        uri = u;
        return null;
    }

    /// <summary>The host to check: IPv6 without brackets or zone, names in their DNS (punycode) form.</summary>
    private static string HostOf(Uri u) => u.HostNameType == UriHostNameType.IPv6 ? u.Host.Trim('[', ']') : u.IdnHost;

    private static Regex CanonicalIPv4Regex(string host) => new($@"^\s*[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^/?#\\@]*@)?{host}(?=[:/?#\\]|\s*$)", RegexOptions.CultureInvariant);

    /// <summary>
    /// The whole check at creation: the URL, then every address the host resolves to now. Null when the URL may be
    /// stored; otherwise a sentence for the `url` field that never repeats the URL (it could hold credentials or tokens).
    /// </summary>
    public async Task<string?> CreationProblemAsync(string? url, CancellationToken ct)
    {
        // Checked when a subscription is made, not at each delivery: one stored before these checks still delivers.
        if (url is { Length: > MaxUrlLength })
            return $"url is {url.Length:N0} characters long; at most {MaxUrlLength:N0}.";
        // System.Uri escapes a space, CR/LF or NUL in the path and accepts it: the stored URL would not be the one used.
        if (url is not null && url.Trim().Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
            return "url must not contain spaces or control characters (percent-encode them).";
        if (UrlProblem(url, out var uri) is { } problem)
            return problem;
        if (uri!.Port is < 1 or > 65535)
            return $"url's port must be 1-65535; got {uri.Port}.";
        if (uri.Fragment.Length > 0)
            return "url has a #fragment, which is never sent to the receiver: leave it out.";
        var host = HostOf(uri!);
        if (IPAddress.TryParse(host, out var literal))
            return Refusal(literal) is { } r ? $"url points at a refused address: {r}" : null;
        host = host.TrimEnd('.');
        if (IsLocalhostName(host))
            return options.Value.AllowLoopbackTargets ? null : $"url points at {host}, a loopback name, refused because Webhooks:AllowLoopbackTargets is false.";
        IPAddress[] addresses;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(ResolveTimeout);
            addresses = await resolver.ResolveAsync(host, timeout.Token);
        }
        catch (Exception e) when (e is SocketException or ArgumentException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return $"url host {host} does not resolve{(e is OperationCanceledException ? $" (no answer within {ResolveTimeout.TotalSeconds:0} s)" : "")}.";
        }
        if (addresses.Length == 0)
            return $"url host {host} does not resolve.";
        foreach (var address in addresses)
            if (Refusal(address) is { } r)
                return $"url host {host} resolves to a refused address: {r}";
        return null;
    }

    private static bool IsLocalhostName(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The sender's <see cref="SocketsHttpHandler.ConnectCallback"/>: resolves the host itself, refuses the connection if
    /// any address is not allowed (so what is dialled is exactly what was checked), then dials the addresses in order.
    /// </summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host.Trim('[', ']');
        var port = context.DnsEndPoint.Port;
        // localhost and *.localhost are loopback (RFC 6761; macOS resolves them so), whatever the system's resolver says:
        // glibc does not resolve foo.localhost, so a subscription the check let in was retried for days (probe).
        IPAddress[] addresses = IPAddress.TryParse(host, out var literal) ? [literal]
            : IsLocalhostName(host.TrimEnd('.')) ? [IPAddress.Loopback, IPAddress.IPv6Loopback]
            : await resolver.ResolveAsync(host.TrimEnd('.'), ct);
        if (addresses.Length == 0)
            throw new WebhookTargetRefusedException($"{host} does not resolve.");
        var refused = addresses.Select(Refusal).OfType<string>().ToList();
        if (refused.Count > 0)
            throw new WebhookTargetRefusedException($"Refused to connect: {string.Join(" ", refused)}");
        Exception? last = null;
        foreach (var address in addresses)
        {
            Socket socket;
            try
            {
                socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            }
            catch (SocketException e)
            {
                // This family is not available here (no IPv6): try the next address; an address tried before says more (review).
                last ??= e;
                continue;
            }
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last!;
    }

    /// <summary>A URL fit for a log line: scheme://host:port/path, never userinfo, query or fragment (they may carry tokens).</summary>
    public static string ForLog(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && u.Host.Length > 0
            ? $"{u.Scheme}://{u.Host}:{u.Port}{u.AbsolutePath}"
            : "(not a URL)";
}

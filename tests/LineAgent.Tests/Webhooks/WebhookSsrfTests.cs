using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using LineAgent.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Webhooks;

/// <summary>A resolver the test steers: names map to whatever addresses the test sets now; unknown names do not resolve.</summary>
public sealed class SteeredResolver : IWebhookResolver
{
    private readonly ConcurrentDictionary<string, IPAddress[]> _names = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentQueue<string> Lookups { get; } = new();

    public SteeredResolver Set(string host, params string[] addresses)
    {
        _names[host] = addresses.Select(IPAddress.Parse).ToArray();
        return this;
    }

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct)
    {
        Lookups.Enqueue(host);
        return _names.TryGetValue(host, out var a) ? Task.FromResult(a) : Task.FromException<IPAddress[]>(new SocketException((int)SocketError.HostNotFound));
    }
}

/// <summary>A loopback HTTP server that counts every request and answers with what the test says.</summary>
public sealed class CountingServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    public int Requests;

    private CountingServer(WebApplication app, Uri url) => (_app, Url) = (app, url);
    public Uri Url { get; }

    public static async Task<CountingServer> StartAsync(Func<HttpRequest, IResult> answer)
    {
        CountingServer? server = null;
        var (app, baseUrl) = await LoopbackServer.StartAsync(app => app.Map("/{**path}", (HttpRequest r) =>
        {
            Interlocked.Increment(ref server!.Requests);
            return answer(r);
        }));
        server = new CountingServer(app, new Uri(baseUrl, "/hook"));
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed class WebhookSsrfTests
{
    private const string PublicAddress = "93.184.215.14";

    private static AgentFactory Agent(SteeredResolver resolver, bool? loopback = null, bool? @private = null)
    {
        var settings = new Dictionary<string, string?>();
        if (loopback is { } l)
            settings["Webhooks:AllowLoopbackTargets"] = l ? "true" : "false";
        if (@private is { } p)
            settings["Webhooks:AllowPrivateTargets"] = p ? "true" : "false";
        return new AgentFactory(settings: settings, services: s => s.AddSingleton<IWebhookResolver>(resolver));
    }

    private static SteeredResolver Names() => new SteeredResolver()
        .Set("internal.nip.io", "10.1.2.3")
        .Set("metadata.test", "169.254.169.254")
        .Set("mixed.test", PublicAddress, "192.168.1.20")
        .Set("mapped.test", "::ffff:10.9.9.9")
        .Set("home.test", "127.0.0.1")
        .Set("hooks.example.test", PublicAddress);

    private static async Task<JsonObject> ExpectRefusedAsync(HttpClient api, string url)
    {
        var problem = await (await api.PostAsJsonAsync("/api/webhooks", new { url })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("invalid_webhook_url"), problem.ToJsonString());
        Assert.That(problem.ProblemFields(), Is.EqualTo(new[] { "url" }));
        Assert.That(problem.ProblemCodes(), Is.EqualTo(new[] { "invalid_webhook_url" }));
        var stored = (await api.GetItemsAsync("/api/webhooks"))!;
        Assert.That(stored, Is.Empty, "nothing stored");
        return problem;
    }

    // Always refused, whatever the settings say: the defaults here, and both allow switches on in the next test.
    [TestCase("http://169.254.169.254/latest/meta-data", "cloud metadata")]
    [TestCase("http://[fd00:ec2::254]/", "cloud metadata")]
    [TestCase("http://169.254.10.1/", "link-local")]
    [TestCase("http://[fe80::1]/", "link-local")]
    [TestCase("http://[fe80::1%25en0]/", "link-local")]
    [TestCase("http://0.0.0.0/", "unspecified")]
    [TestCase("http://0.1.2.3/", "unspecified")]
    [TestCase("http://[::]/", "unspecified")]
    [TestCase("http://224.0.0.251/", "multicast")]
    [TestCase("http://[ff02::1]/", "multicast")]
    [TestCase("http://255.255.255.255/", "broadcast")]
    [TestCase("http://[::ffff:169.254.169.254]/", "cloud metadata")]
    [TestCase("http://[::ffff:a9fe:a9fe]/", "cloud metadata")]
    [TestCase("http://[::169.254.169.254]/", "cloud metadata")]
    [TestCase("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata")]
    [TestCase("http://2130706433/", "decimal, octal or hex")]
    [TestCase("http://0x7f.1/", "decimal, octal or hex")]
    [TestCase("http://0177.0.0.1/", "decimal, octal or hex")]
    [TestCase("http://0xa9fea9fe/", "decimal, octal or hex")]
    [TestCase("http://1.2.3.4.5/", "looks like a number")]
    [TestCase("http://user:pass@example.com/", "credentials")]
    [TestCase("http://user@hooks.example.test/", "credentials")]
    [TestCase("http://@hooks.example.test/", "credentials")]
    [TestCase("ftp://example.com/", "http(s)")]
    [TestCase("file:///etc/passwd", "http(s)")]
    [TestCase("/relative/hook", "http(s)")]
    [TestCase("", "http(s)")]
    [TestCase("http://metadata.test/", "cloud metadata")]
    public async Task Create_ShouldRefuse_AddressesNeverAllowed(string url, string why)
    {
        using var agent = Agent(Names());
        using var api = agent.Api();
        var problem = await ExpectRefusedAsync(api, url);
        Assert.That(problem.Str("detail"), Does.Contain(why));
        if (url.Length > 0)
            Assert.That(problem.Str("detail"), Does.Not.Contain(url), "the URL (it may hold credentials) is never echoed");
    }

    [TestCase("http://169.254.169.254/latest/meta-data")]
    [TestCase("http://[fd00:ec2::254]/")]
    [TestCase("http://[::ffff:169.254.169.254]/")]
    [TestCase("http://0.0.0.0/")]
    [TestCase("http://2130706433/")]
    [TestCase("http://user:pass@127.0.0.1:9/")]
    public async Task Create_ShouldRefuse_AddressesNeverAllowed_EvenWithBothSwitchesOn(string url)
    {
        using var agent = Agent(Names(), loopback: true, @private: true);
        using var api = agent.Api();
        await ExpectRefusedAsync(api, url);
    }

    // Private networks, refused by default (Webhooks:AllowPrivateTargets=false). internal.nip.io stands for *.nip.io names.
    [TestCase("http://10.0.0.5/")]
    [TestCase("http://172.16.4.4/")]
    [TestCase("http://192.168.1.10/")]
    [TestCase("http://100.64.0.1/")]
    [TestCase("http://[fd12:3456::1]/")]
    [TestCase("http://[::ffff:10.0.0.5]/")]
    [TestCase("http://internal.nip.io/hook")]
    [TestCase("http://mapped.test/")]
    [TestCase("http://mixed.test/")]
    public async Task Create_ShouldRefuse_PrivateTargets_ByDefault_AndAccept_WhenAllowed(string url)
    {
        using (var agent = Agent(Names()))
        using (var api = agent.Api())
        {
            var problem = await ExpectRefusedAsync(api, url);
            Assert.That(problem.Str("detail"), Does.Contain("Webhooks:AllowPrivateTargets"));
        }
        using (var agent = Agent(Names(), @private: true))
        using (var api = agent.Api())
        {
            var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url })).ExpectAsync(HttpStatusCode.Created);
            Assert.That(hook.Str("url"), Is.EqualTo(new Uri(url).ToString()));
        }
    }

    // Loopback: allowed by default (a receiver on the same Mac), refused with Webhooks:AllowLoopbackTargets=false.
    [TestCase("http://[::1]:9/")]
    [TestCase("http://127.0.0.1:9/hook")]
    [TestCase("http://127.8.9.10:9/hook")]
    [TestCase("http://localhost:9/")]
    [TestCase("http://[::ffff:127.0.0.1]:9/")]
    [TestCase("http://home.test:9/")]
    public async Task Create_ShouldAcceptLoopback_ByDefault_AndRefuseIt_WhenSwitchedOff(string url)
    {
        using (var agent = Agent(Names()))
        using (var api = agent.Api())
            await (await api.PostAsJsonAsync("/api/webhooks", new { url })).ExpectAsync(HttpStatusCode.Created);
        using (var agent = Agent(Names(), loopback: false))
        using (var api = agent.Api())
        {
            var problem = await ExpectRefusedAsync(api, url);
            Assert.That(problem.Str("detail"), Does.Contain("Webhooks:AllowLoopbackTargets"));
        }
    }

    [Test]
    public async Task Create_ShouldRefuse_ANameThatDoesNotResolve_AndAccept_APublicOne()
    {
        using var agent = Agent(Names());
        using var api = agent.Api();
        var problem = await ExpectRefusedAsync(api, "http://nowhere.invalid/hook");
        Assert.That(problem.Str("detail"), Does.Contain("nowhere.invalid does not resolve"));

        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = "https://hooks.example.test/in?token=abc" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(hook.Str("url"), Is.EqualTo("https://hooks.example.test/in?token=abc"));
    }

    [Test]
    public async Task Redirect_ShouldNotBeFollowed_AndCountsAsAFailedAttemptWithTheStatus()
    {
        await using var second = await CountingServer.StartAsync(_ => Results.NoContent());
        await using var first = await CountingServer.StartAsync(_ => Results.Redirect(second.Url.ToString(), permanent: false, preserveMethod: true));
        using var agent = Agent(Names());
        using var api = agent.Api();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = first.Url.ToString() })).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(new { content = "one", recipientPhone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);

        var attempt = await FirstAttemptAsync(api, hook.Str("id"));
        Assert.That(first.Requests, Is.EqualTo(1));
        Assert.That(second.Requests, Is.Zero, "the redirect target got the payload");
        Assert.That(attempt.Str("status"), Is.EqualTo("pending"), "retried with backoff like any non-2xx");
        Assert.That(attempt["lastStatus"]!.GetValue<int>(), Is.EqualTo(307));
        Assert.That(attempt.Str("lastError"), Does.Contain("307").And.Contain("redirects are not followed"));
        Assert.That(attempt.StrOrNull("nextAttemptAt"), Is.Not.Null);
    }

    [Test]
    public async Task DnsRebinding_ShouldBeCaughtAtConnectTime_TheReceiverNeverGetsARequest()
    {
        await using var receiver = await CountingServer.StartAsync(_ => Results.NoContent());
        var resolver = Names().Set("rebind.test", PublicAddress);
        using var agent = Agent(resolver, loopback: false);
        using var api = agent.Api();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = $"http://rebind.test:{receiver.Url.Port}/hook" }))
            .ExpectAsync(HttpStatusCode.Created);

        resolver.Set("rebind.test", "127.0.0.1");
        await (await api.SendMessageAsync(new { content = "one", recipientPhone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);

        var attempt = await FirstAttemptAsync(api, hook.Str("id"));
        Assert.That(receiver.Requests, Is.Zero, "the rebound name reached loopback");
        Assert.That(attempt.Str("status"), Is.EqualTo("pending"));
        Assert.That(attempt.Str("lastError"), Does.Contain("127.0.0.1").And.Contain("Webhooks:AllowLoopbackTargets"));
        Assert.That(attempt["lastStatus"], Is.Null);
        Assert.That(resolver.Lookups.Count(h => h == "rebind.test"), Is.GreaterThanOrEqualTo(2), "resolved at creation and again when connecting");
    }

    [Test]
    public async Task RowsStoredBeforeTheGuard_ShouldBeRefusedWhenSending()
    {
        await using var receiver = await CountingServer.StartAsync(_ => Results.NoContent());
        using var agent = Agent(Names());
        using var api = agent.Api();
        var db = agent.Services.GetRequiredService<Db>();
        await using (var c = await db.OpenAsync(CancellationToken.None))
        {
            foreach (var (id, url) in new[]
                     {
                         ("wh_meta", "http://169.254.169.254/latest/meta-data"),
                         ("wh_creds", $"http://user:pass@127.0.0.1:{receiver.Url.Port}/hook"),
                         ("wh_mapped", "http://[::ffff:10.0.0.5]/"),
                     })
                await c.ExecuteAsync("INSERT INTO webhooks (id, url, events, secret, created_at) VALUES (@id, @url, '[]', @secret, 0)",
                    new { id, url, secret = WebhookSignature.NewSecret() });
        }
        await agent.Services.GetRequiredService<WebhookOutbox>().ReloadAsync(CancellationToken.None);
        await (await api.SendMessageAsync(new { content = "one", recipientPhone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);

        Assert.That((await FirstAttemptAsync(api, "wh_meta")).Str("lastError"), Does.Contain("169.254.169.254 is the cloud metadata address"));
        Assert.That((await FirstAttemptAsync(api, "wh_creds")).Str("lastError"), Does.Contain("credentials").And.Not.Contain("pass@"));
        Assert.That((await FirstAttemptAsync(api, "wh_mapped")).Str("lastError"), Does.Contain("::ffff:10.0.0.5").And.Contain("private"));
        Assert.That(receiver.Requests, Is.Zero);
    }

    private static async Task<JsonObject> FirstAttemptAsync(HttpClient api, string hookId)
    {
        var log = await Eventually.ValueAsync(() => api.GetItemsAsync($"/api/webhooks/{hookId}/deliveries"),
            l => l.Count == 1 && l[0]["attempts"]!.GetValue<int>() >= 1, "the first delivery attempt");
        return log.Single();
    }
}

/// <summary>The address classes, without an agent.</summary>
public sealed class WebhookTargetClassTests
{
    [TestCase("169.254.169.254", TargetKind.Forbidden)]
    [TestCase("169.254.0.1", TargetKind.Forbidden)]
    [TestCase("fd00:ec2::254", TargetKind.Forbidden)]
    [TestCase("fe80::1", TargetKind.Forbidden)]
    [TestCase("febf::1", TargetKind.Forbidden)]
    [TestCase("0.0.0.0", TargetKind.Forbidden)]
    [TestCase("::", TargetKind.Forbidden)]
    [TestCase("224.0.0.1", TargetKind.Forbidden)]
    [TestCase("239.255.255.250", TargetKind.Forbidden)]
    [TestCase("ff05::2", TargetKind.Forbidden)]
    [TestCase("255.255.255.255", TargetKind.Forbidden)]
    [TestCase("::ffff:169.254.169.254", TargetKind.Forbidden)]
    [TestCase("::ffff:0:169.254.169.254", TargetKind.Forbidden)]
    [TestCase("::ffff:0.0.0.0", TargetKind.Forbidden)]
    [TestCase("::ffff:224.0.0.1", TargetKind.Forbidden)]
    [TestCase("127.0.0.1", TargetKind.Loopback)]
    [TestCase("127.255.255.254", TargetKind.Loopback)]
    [TestCase("::1", TargetKind.Loopback)]
    [TestCase("::ffff:127.0.0.1", TargetKind.Loopback)]
    [TestCase("::127.0.0.1", TargetKind.Loopback)]
    [TestCase("10.0.0.1", TargetKind.Private)]
    [TestCase("172.16.0.1", TargetKind.Private)]
    [TestCase("172.31.255.255", TargetKind.Private)]
    [TestCase("192.168.0.1", TargetKind.Private)]
    [TestCase("100.64.0.1", TargetKind.Private)]
    [TestCase("100.127.255.255", TargetKind.Private)]
    [TestCase("fc00::1", TargetKind.Private)]
    [TestCase("fdff::1", TargetKind.Private)]
    [TestCase("::ffff:192.168.1.1", TargetKind.Private)]
    [TestCase("64:ff9b::10.0.0.1", TargetKind.Private)]
    [TestCase("64:ff9b:1::10.0.0.1", TargetKind.Private)]
    [TestCase("64:ff9b:1::127.0.0.1", TargetKind.Loopback)]
    [TestCase("2002:7f00:1::1", TargetKind.Loopback, Description = "6to4 of 127.0.0.1")]
    [TestCase("2002:a9fe:a9fe::1", TargetKind.Forbidden, Description = "6to4 of the metadata address")]
    [TestCase("2002:c0a8:101::1", TargetKind.Private, Description = "6to4 of 192.168.1.1")]
    [TestCase("2001:0:4136:e378:8000:63bf:80ff:fffe", TargetKind.Loopback, Description = "Teredo, client 127.0.0.1 (inverted)")]
    [TestCase("2001:0:4136:e378:8000:63bf:f5ff:fffe", TargetKind.Private, Description = "Teredo, client 10.0.0.1 (inverted)")]
    [TestCase("2002:5db8:d70e::1", TargetKind.Public, Description = "6to4 of a public address")]
    [TestCase("172.15.255.255", TargetKind.Public)]
    [TestCase("172.32.0.1", TargetKind.Public)]
    [TestCase("100.63.255.255", TargetKind.Public)]
    [TestCase("100.128.0.1", TargetKind.Public)]
    [TestCase("169.253.0.1", TargetKind.Public)]
    [TestCase("93.184.215.14", TargetKind.Public)]
    [TestCase("2606:2800:21f:cb07:6820:80da:af6b:8b2c", TargetKind.Public)]
    [TestCase("::ffff:93.184.215.14", TargetKind.Public)]
    public void Classify_ShouldPutEachAddressInItsClass(string address, TargetKind kind)
    {
        Assert.That(WebhookTargetGuard.Classify(IPAddress.Parse(address)).Kind, Is.EqualTo(kind));
    }

    [TestCase("https://user:pass@hooks.example.com:8443/in/x?token=secret#frag", "https://hooks.example.com:8443/in/x")]
    [TestCase("http://127.0.0.1:5000/hook?key=k", "http://127.0.0.1:5000/hook")]
    [TestCase("http://[::1]/", "http://[::1]:80/")]
    [TestCase("not a url", "(not a URL)")]
    public void ForLog_ShouldKeepSchemeHostPortAndPathOnly(string url, string logged)
    {
        Assert.That(WebhookTargetGuard.ForLog(url), Is.EqualTo(logged));
    }

    [Test]
    public void Refusal_ShouldFollowTheSwitches()
    {
        WebhookTargetGuard Guard(bool loopback, bool @private) => new(new DnsWebhookResolver(),
            Options.Create(new WebhookOptions { AllowLoopbackTargets = loopback, AllowPrivateTargets = @private }));
        var defaults = new WebhookOptions();
        Assert.That((defaults.AllowLoopbackTargets, defaults.AllowPrivateTargets), Is.EqualTo((true, false)), "the documented defaults");
        Assert.That(Guard(true, false).Refusal(IPAddress.Loopback), Is.Null);
        Assert.That(Guard(false, false).Refusal(IPAddress.Loopback), Does.Contain("127.0.0.1"));
        Assert.That(Guard(true, false).Refusal(IPAddress.Parse("10.0.0.1")), Does.Contain("10.0.0.1"));
        Assert.That(Guard(true, true).Refusal(IPAddress.Parse("10.0.0.1")), Is.Null);
        Assert.That(Guard(true, true).Refusal(IPAddress.Parse("169.254.169.254")), Does.Contain("never"));
    }
}

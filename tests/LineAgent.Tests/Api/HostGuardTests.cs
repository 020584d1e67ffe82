using System.Net;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>
/// DNS rebinding: a page at evil.example re-points its name at 127.0.0.1 and then calls the agent as its own origin.
/// The real agent process (Kestrel bound to loopback) answers only Hosts that are this machine's.
/// </summary>
public sealed class HostGuardTests
{
    [Test]
    public async Task ARequestForAnotherName_ShouldBeRefused_EvenWithTheToken_AndLoopbackNamesAnswered()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: ["--dry-run", "--Api:AllowedHosts=mymac.local"]);
        using var api = agent.Api();
        var port = agent.BaseAddress.Port;

        async Task<HttpResponseMessage> Get(string path, string host)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Host = host;
            return await api.SendAsync(request);
        }

        foreach (var path in new[] { "/api/status", "/healthz", "/openapi/v1.json", "/messages" })
        {
            var refused = await Get(path, $"evil.example:{port}");
            var problem = await refused.ExpectAsync(HttpStatusCode.BadRequest);
            Assert.That(problem["problems"]![0].Str("code"), Is.EqualTo("invalid_host"), path);
            Assert.That(problem["problems"]![0].Str("detail"), Does.Contain("'evil.example'"), path);
        }
        var sent = await (await api.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550142" })).ExpectAsync(HttpStatusCode.Created);
        using (var post = new HttpRequestMessage(HttpMethod.Post, "/api/messages")
               { Content = System.Net.Http.Json.JsonContent.Create(new { content = "rebound", recipientPhone = "+12025550142" }) })
        {
            post.Headers.Host = "evil.example";
            (await (await api.SendAsync(post)).ExpectAsync(HttpStatusCode.BadRequest)).Str("code");
        }
        var all = await api.GetJsonAsync("/api/messages");
        Assert.That(all["items"]!.AsArray().Select(m => m.Str("content")), Is.EqualTo(new[] { "hi" }), "nothing stored from the refused POST");
        Assert.That(sent.Str("status"), Is.EqualTo("sent"));

        // An address cannot be rebound (the page's origin would be the address), so any IP literal is taken.
        foreach (var host in new[] { $"127.0.0.1:{port}", $"localhost:{port}", "LOCALHOST", $"[::1]:{port}", $"mymac.local:{port}", "192.0.2.7" })
            Assert.That((await Get("/api/status", host)).StatusCode, Is.EqualTo(HttpStatusCode.OK), host);
        // Safari resolves *.localhost through the system resolver, which a hostile DNS server answers.
        Assert.That((await Get("/api/status", "app.localhost")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));

        // The console's /login answers only to loopback names and addresses: a link asked for under an allowed name of the Mac
        // names the address the request came in on, and works there (it named mymac.local, where /login refused it).
        using (var linkRequest = new HttpRequestMessage(HttpMethod.Post, "/api/console/link"))
        {
            linkRequest.Headers.Host = $"mymac.local:{port}";
            var url = new Uri((await (await api.SendAsync(linkRequest)).ExpectAsync(HttpStatusCode.OK)).Str("url"));
            Assert.That(url.Authority, Is.EqualTo($"127.0.0.1:{port}"));
            using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
            Assert.That((await browser.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        }
    }
}

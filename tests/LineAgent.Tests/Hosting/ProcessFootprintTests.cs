using System.Net;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Hosting;

/// <summary>
/// What the real agent process maps for its everyday work (Linux: /proc/&lt;pid&gt;/maps). A first start (it generates the API
/// token), a send and the token check need neither OpenSSL (RandomNumberGenerator and SHA-256 load it on Linux) nor the HTTP client stack (webhooks and Twilio
/// make theirs on first use): together about 5 MB of resident memory (README Performance).
/// </summary>
public sealed class ProcessFootprintTests
{
    [Test]
    public async Task SendsAndTheTokenCheck_ShouldNotLoadOpenSslOrTheHttpClient()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Ignore("reads /proc/<pid>/maps");
        using var dir = new TempDir();
        // No Api:Token: a first start generates its token (RandomNumberGenerator loaded OpenSSL for it).
        using var agent = await AgentProcess.StartAsync(dir.File("data"), token: null, args: ["--dry-run"]);
        Assert.That(agent.Token, Does.Match("^la_[0-9a-f]{48}$"));
        using var api = agent.Api();
        for (var i = 0; i < 3; i++)
            await (await api.SendMessageAsync(new { content = $"hi {i}", recipientPhone = "+12025550142" })).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(new { content = "later", recipientPhone = "+12025550143", scheduledAt = "2030-01-01T00:00:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        using (var wrong = new HttpClient { BaseAddress = agent.BaseAddress })
        {
            wrong.DefaultRequestHeaders.Authorization = new("Bearer", "not-the-token");
            Assert.That((await wrong.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }

        var mapped = File.ReadAllLines($"/proc/{agent.Pid}/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Last()).ToHashSet();
        Assert.That(mapped.Where(m => m.Contains("libcrypto") || m.Contains("libssl") || m.EndsWith("/System.Net.Http.dll")), Is.Empty);
        Assert.That(mapped.Any(m => m.EndsWith("/lineagent.dll")), Is.True, "the maps are the agent's");
    }
}

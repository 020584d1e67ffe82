using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>Every answer of the agent carries X-Content-Type-Options: nosniff (JSON, problems, exports, the document).</summary>
public sealed class ResponseHeadersTests
{
    [TestCase("/api/status", 200)]
    [TestCase("/api/messages/msg_nope", 404)]
    [TestCase("/api/messages/export?format=csv", 200)]
    [TestCase("/openapi/v1.json", 200)]
    [TestCase("/healthz", 200)]
    public async Task EveryAnswer_ShouldSayNoSniff(string path, int status)
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        using var response = await api.GetAsync(path);
        Assert.That((int)response.StatusCode, Is.EqualTo(status));
        Assert.That(response.Headers.GetValues("X-Content-Type-Options"), Is.EqualTo(new[] { "nosniff" }));
    }

    [Test]
    public async Task AnAnswerWithoutTheToken_ShouldSayNoSniffToo()
    {
        using var agent = new AgentFactory();
        using var anonymous = agent.CreateClient();
        using var response = await anonymous.GetAsync("/api/status");
        Assert.That((int)response.StatusCode, Is.EqualTo(401));
        Assert.That(response.Headers.GetValues("X-Content-Type-Options"), Is.EqualTo(new[] { "nosniff" }));
    }
}

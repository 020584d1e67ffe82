namespace LineAgent.Tests.Support;

/// <summary>A fixture with a fresh agent (and an authorised client) per test.</summary>
public abstract class AgentTest
{
    protected AgentFactory Agent = null!;
    protected HttpClient Client = null!;

    protected virtual AgentFactory CreateAgent() => new();

    [SetUp]
    public void StartAgent()
    {
        Agent = CreateAgent();
        Client = Agent.Api();
    }

    [TearDown]
    public void StopAgent()
    {
        Client.Dispose();
        Agent.Dispose();
    }
}

using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LineAgent.Tests.Hosting;

/// <summary>
/// ASP.NET Core makes an Activity and a log scope for every request while its hosting log category is enabled at all (at
/// Critical); the agent ships it off (appsettings.json), which took a tenth of a POST's CPU under load (issue 10). A user
/// who wants a line per request sets it to Information.
/// </summary>
public sealed class RequestDiagnosticsTests
{
    private const string Category = "Microsoft.AspNetCore.Hosting.Diagnostics";

    [Test]
    public void TheHostingsPerRequestDiagnostics_ShouldBeOffAsShipped()
    {
        using var agent = new AgentFactory();
        var logs = agent.Services.GetRequiredService<ILoggerFactory>();
        Assert.That(logs.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning), Is.True, "the agent logs at all");
        Assert.That(logs.CreateLogger(Category).IsEnabled(LogLevel.Critical), Is.False);
    }

    [Test]
    public void TheHostingsPerRequestDiagnostics_ShouldComeBackWhenAsked()
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { [$"Logging:LogLevel:{Category}"] = "Information" });
        Assert.That(agent.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Category).IsEnabled(LogLevel.Information), Is.True);
    }
}

using System.Net;
using LineAgent.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LineAgent.Tests.WebConsole;

/// <summary>
/// The Lines page of a line its pacing holds, in a real browser (Debian's Chromium, as <see cref="ConsoleBrowserTests"/>): an
/// agent of its own, a dry-run line paced at one send an hour, so after one send the hold lasts the whole test.
/// </summary>
[NonParallelizable]
public sealed class ConsoleLinesPageTests
{
    private TempDir _dir = null!;
    private AgentProcess _agent = null!;
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        if (!File.Exists(ConsoleBrowserTests.ChromiumPath))
            Assert.Ignore($"Needs Chromium at {ConsoleBrowserTests.ChromiumPath} (.ci/run installs it).");
        _dir = new TempDir();
        _agent = await AgentProcess.StartAsync(_dir.File("data"), args:
        [
            "--dry-run", "--Agent:DryRunPacing=true", "--Lines:0:Id=default", "--Lines:0:Pacing:MaxPerHour=1",
            "--Lines:0:Pacing:MinGap=00:00:00", "--Lines:0:Pacing:Jitter=00:00:00", "--Lines:0:Pacing:Window:From=",
            "--Lines:0:Pacing:Window:To=", "--Logging:LogLevel:Default=Warning",
        ]);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            Headless = true,
            ExecutablePath = ConsoleBrowserTests.ChromiumPath,
            Args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
        });
        SetDefaultExpectTimeout(20_000);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_browser is not null) await _browser.CloseAsync();
        _playwright?.Dispose();
        _agent?.Dispose();
        _dir?.Dispose();
    }

    /// <summary>Probe J: a capped line did not say when it sends again (the API now has usage.heldUntil and heldBecause).</summary>
    [Test]
    public async Task ACappedLine_ShouldSayWhenItsNextSendMayGo_AndWhy()
    {
        using var api = _agent.Api();
        await (await api.SendMessageAsync(new { content = "one an hour", recipientPhone = "+12025550142" })).ExpectAsync(HttpStatusCode.Created);
        var link = (await (await api.PostAsync("/api/console/link", null)).ExpectAsync(HttpStatusCode.OK)).Str("url");

        var context = await _browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = _agent.BaseAddress.ToString(), Locale = "en-US" });
        try
        {
            var page = await context.NewPageAsync();
            await page.GotoAsync(link);
            await page.GotoAsync("/lines");
            await Expect(page.Locator(".line .line-state")).ToHaveTextAsync("Working: its pacing holds the next send for now (see Today).");
            var usage = page.Locator(".line .usage");
            await Expect(usage).ToContainTextAsync("Sent in the last hour: 1 of 1");
            await Expect(usage).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"Next send not before .+: 1 sends per hour reached\."));
        }
        finally
        {
            await context.CloseAsync();
        }
    }
}

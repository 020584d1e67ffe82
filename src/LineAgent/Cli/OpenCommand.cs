using System.CommandLine;
using System.Diagnostics;

namespace LineAgent.Cli;

/// <summary>
/// `lineagent open [--print-url]`: asks the running agent (with the API token of its data dir) for a one-time
/// console link and opens it in the browser, or prints it. Returns at once either way.
/// </summary>
public static class OpenCommand
{
    public static Command Create()
    {
        var printUrl = new Option<bool>("--print-url") { Description = "Print the one-time link instead of opening a browser (it works once, for a minute)." };
        var open = new Command("open", "Open the web console in your browser, signed in (a one-time link).") { printUrl, ClientCommands.Url };
        open.SetAction(async (result, ct) =>
        {
            using var terminal = TerminalText.ForConsole();
            using var client = new AgentClient(ClientCommands.LoadConfiguration(result), result.GetValue(ClientCommands.Url));
            if (client.Token is null)
            {
                Console.Error.WriteLine(client.NoToken);
                return 1;
            }
            int code;
            System.Text.Json.Nodes.JsonNode? body;
            try
            {
                (code, body) = await client.SendAsync(HttpMethod.Post, "/api/console/link", ct: ct);
            }
            catch (HttpRequestException e)
            {
                Console.Error.WriteLine($"The agent does not answer at {client.BaseUrl} ({e.Message}). Start it: {AgentCli.StartAdvice}.");
                return 1;
            }
            catch (TaskCanceledException e) when (e.InnerException is TimeoutException)
            {
                Console.Error.WriteLine($"The agent at {client.BaseUrl} did not answer within {client.Timeout.TotalSeconds:0} s: it is busy or hung (its log: {AgentCli.LogAdvice}).");
                return 1;
            }
            if (code != 200 || body?["url"]?.GetValue<string>() is not { } url)
            {
                Console.Error.WriteLine(AgentClient.Describe(code, body));
                return 1;
            }
            if (result.GetValue(printUrl))
            {
                Console.WriteLine(url);
                return 0;
            }
            if (!TryOpenBrowser(url))
            {
                Console.Error.WriteLine("Could not open a browser here. Open this link yourself (it works once, for a minute):");
                Console.WriteLine(url);
                return 1;
            }
            Console.WriteLine("Opened the console in your browser (the link works once, for a minute).");
            return 0;
        });
        return open;
    }

    /// <summary>
    /// `open` on macOS, `xdg-open` elsewhere. Both return once the browser has the link, or fail (xdg-open: "no method
    /// available" without a desktop, exit 3): a failure is reported and the link printed. An opener still running after
    /// 5 s (some hand the link to a browser they then wait for) is taken as success. xdg-open's own words ("xdg-open: no
    /// method available for opening ...", a browser's log lines) go to /dev/null through sh: this command says what
    /// happened itself. Not through a pipe of ours: a browser it starts keeps the pipe and would write to it after we exit.
    /// </summary>
    private static bool TryOpenBrowser(string url)
    {
        try
        {
            var psi = OperatingSystem.IsMacOS()
                ? new ProcessStartInfo("/usr/bin/open") { UseShellExecute = false }
                : new ProcessStartInfo("/bin/sh", ["-c", "exec xdg-open \"$1\" >/dev/null 2>&1", "sh"]) { UseShellExecute = false };
            psi.ArgumentList.Add(url);
            using var process = Process.Start(psi);
            if (process is null)
                return false;
            return !process.WaitForExit(TimeSpan.FromSeconds(5)) || process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

using System.CommandLine;
using LineAgent.Api;
using LineAgent.Hosting;
using Microsoft.Extensions.Configuration;

namespace LineAgent.Cli;

/// <summary>Commands that talk to a running agent (or read its data directory).</summary>
public static class ClientCommands
{
    public static IEnumerable<Command> Create()
    {
        var token = new Command("token", "Print the API token of the agent (from Api:Token or <data dir>/api-token).");
        token.SetAction(result =>
        {
            var config = LoadConfiguration(result);
            var value = config["Api:Token"] is { Length: > 0 } t ? t : ApiToken.ReadFile(new DataDirectory(DataDirOf(config)).TokenFile);
            if (value is null)
            {
                Console.Error.WriteLine("No token yet: start the agent once (lineagent run) and it writes one.");
                return 1;
            }
            Console.WriteLine(value);
            return 0;
        });
        yield return token;
    }

    /// <summary>The same layered configuration the agent reads, without starting it.</summary>
    public static IConfiguration LoadConfiguration(ParseResult result)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true);
        builder.AddAgentConfiguration(result.UnmatchedTokens.ToArray(), AgentCli.Overrides(result));
        return builder.Configuration;
    }

    public static string DataDirOf(IConfiguration config) =>
        (config.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions()).ResolveDataDir();
}

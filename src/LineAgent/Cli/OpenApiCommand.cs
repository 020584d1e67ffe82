using System.CommandLine;
using LineAgent.Api;
using LineAgent.Hosting;

namespace LineAgent.Cli;

/// <summary>
/// `lineagent openapi [--output FILE] [--urls URL]`: the OpenAPI document the agent serves at /openapi/v1.json,
/// built from the same endpoints without listening anywhere (a throw-away data directory, nothing started).
/// </summary>
public static class OpenApiCommand
{
    public static Command Create()
    {
        var output = new Option<string?>("--output", "-o") { Description = "Write the document to this file instead of standard output." };
        var command = new Command("openapi", "Print the OpenAPI document (JSON, OpenAPI 3.1) of this agent's HTTP API; starts nothing.")
        {
            output,
        };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (result, ct) =>
        {
            var scratch = Directory.CreateTempSubdirectory("lineagent-openapi-");
            try
            {
                var overrides = AgentCli.Overrides(result);
                overrides["Agent:DataDir"] = scratch.FullName;
                overrides["Agent:DryRun"] = "true";
                overrides["Api:Token"] = "openapi";
                overrides["Logging:LogLevel:Default"] = "None";
                string json;
                await using (var app = AgentHost.Prepare(AgentHost.Build(result.UnmatchedTokens.ToArray(), overrides)))
                {
                    // The host hands the mapped endpoints to routing when it starts; this app never starts, so do it here.
                    app.UseRouting();
                    app.UseEndpoints(_ => { });
                    json = await OpenApiDocumentation.WriteJsonAsync(app.Services, ct);
                }
                if (result.GetValue(output) is { } file)
                {
                    if (Directory.Exists(file))
                        throw new CliProblem($"lineagent openapi: {file} is a directory; give a file name (-o {Path.Combine(file, "lineagent.json")}).");
                    try
                    {
                        await File.WriteAllTextAsync(file, json + "\n", ct);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        throw new CliProblem($"lineagent openapi: cannot write {file}: {e.Message}");
                    }
                }
                else
                    await Console.Out.WriteLineAsync(json);
                return 0;
            }
            finally
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                scratch.Delete(recursive: true);
            }
        });
        return command;
    }
}

using LineAgent.Cli;
using LineAgent.Storage;

SqliteSetup.BeforeFirstConnection();
return await AgentCli.InvokeAsync(args);

/// <summary>The entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;

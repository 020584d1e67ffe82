using LineAgent.Cli;
using LineAgent.Hosting;
using LineAgent.Storage;

ProcessMemory.LimitMallocArenas();
SqliteSetup.BeforeFirstConnection();
return await AgentCli.InvokeAsync(args);

/// <summary>The entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;

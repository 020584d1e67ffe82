// Black-box benchmark of LineAgent over HTTP (issue #10). See README.md, "Performance".
//   dotnet run -c Release --project bench/LineAgent.Bench [-- --seconds 10 --idle-seconds 60 --only api,due --quick]
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using LineAgent.Bench;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
Console.OutputEncoding = System.Text.Encoding.UTF8;

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (HelpRequested)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

using var cts = new CancellationTokenSource();
// Ctrl+C, SIGTERM, SIGHUP: cancel, then the finally below stops every child and deletes the temp dirs. A second one kills at once.
void OnSignal(PosixSignalContext context)
{
    if (!cts.IsCancellationRequested)
    {
        context.Cancel = true;
        Console.Error.WriteLine($"\n{context.Signal}: stopping the agents and cleaning up (again to force)...");
        cts.Cancel();
    }
    else
    {
        Child.KillAll();
    }
}
var signals = new List<PosixSignalRegistration>();
foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP })
{
    try { signals.Add(PosixSignalRegistration.Create(signal, OnSignal)); }
    catch (PlatformNotSupportedException) { }
}
AppDomain.CurrentDomain.ProcessExit += (_, _) => Child.KillAll();

var tempRoot = Directory.CreateTempSubdirectory("lineagent-bench-").FullName;
var report = new Report();
var failed = new List<string>();
var exit = 0;
try
{
    var targets = Targets.Locate();
    var configuration = typeof(Program).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "?";
    Console.WriteLine($"LineAgent bench ({configuration}{(options.Quick ? ", quick" : "")}): {Machine()}");
    Console.WriteLine($"  agent {targets.AgentDll}\n  bare  {targets.BareDll}\n  temp  {tempRoot}");
    if (configuration != "Release")
        report.Note($"the bench was built in {configuration}: the agent and bare builds are {configuration} builds too; use -c Release.");

    var steps = new Steps(options, targets, tempRoot, report, cts.Token);
    (string Name, Func<Task> Run)[] plan =
    [
        ("api", steps.ApiAsync), ("due", steps.DueAsync), ("sparse", steps.SparseAsync),
        ("idle", steps.IdleAsync), ("history", steps.HistoryAsync), ("bulk", steps.BulkAsync),
    ];
    foreach (var (name, run) in plan.Where(p => options.Runs(p.Name)))
    {
        try
        {
            await run();
        }
        catch (Exception e) when (e is not OperationCanceledException || !cts.IsCancellationRequested)
        {
            Console.Error.WriteLine($"[{name}] failed: {e}");
            failed.Add(name);
            report.Note($"step {name} FAILED: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }
        finally
        {
            Child.KillAll(); // a failed step must not leave its processes to the next one
        }
    }
    Console.WriteLine();
    Console.WriteLine(report.Markdown(
        $"## LineAgent bench: {Machine()}\n\n" +
        $"`dotnet run -c Release --project bench/LineAgent.Bench{(args.Length > 0 ? " -- " + string.Join(' ', args) : "")}` " +
        $"({DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC; agent: dry run, pacing off; load generator on the same machine)"));
    exit = failed.Count > 0 ? 1 : 0;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    Console.Error.WriteLine("cancelled.");
    exit = 130;
}
catch (Exception e)
{
    Console.Error.WriteLine(e.Message);
    exit = 1;
}
finally
{
    Child.KillAll();
    signals.ForEach(r => r.Dispose());
    // LINEAGENT_BENCH_KEEP=1 keeps the data directories (the 1,000,000-row history database, say) for a closer look.
    var keep = Environment.GetEnvironmentVariable("LINEAGENT_BENCH_KEEP") == "1";
    if (keep)
        Console.Error.WriteLine($"kept {tempRoot} (LINEAGENT_BENCH_KEEP=1)");
    for (var attempt = 0; !keep && attempt < 5 && Directory.Exists(tempRoot); attempt++)
    {
        try { Directory.Delete(tempRoot, recursive: true); }
        catch (IOException) { Thread.Sleep(500); }
        catch (UnauthorizedAccessException) { Thread.Sleep(500); }
    }
}
return exit;

static string Machine()
{
    var cpu = "";
    var memory = "";
    if (OperatingSystem.IsLinux())
    {
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
            var kb = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            if (long.TryParse(kb, CultureInfo.InvariantCulture, out var k)) memory = $", {k / 1024.0 / 1024:0.0} GB RAM";
        }
        catch (IOException) { }
    }
    return $"{Environment.ProcessorCount} cores{(cpu.Length > 0 ? $" ({cpu})" : "")}{memory}, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}";
}

public partial class Program;

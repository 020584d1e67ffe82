using System.CommandLine;
using LineAgent.Storage;

namespace LineAgent.Cli;

/// <summary>`lineagent restore [--data-dir DIR] [--from FILE] [--yes]`: put a backup of the database back in place.</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var from = new Option<string?>("--from")
        {
            Description = "The backup to restore: a file, or a name in <data dir>/backups. Default: the newest backup that passes quick_check.",
        };
        var yes = new Option<bool>("--yes") { Description = "Restore the newest good backup (without --from or --yes: only list the backups)." };
        var restore = new Command("restore",
            "Put a backup of the database back as <data dir>/lineagent.db (the agent must be stopped); the current file is moved aside, never deleted.")
        {
            from,
            yes,
        };
        restore.SetAction(result =>
        {
            var dataDir = ClientCommands.DataDirOf(ClientCommands.LoadConfiguration(result));
            var run = new DatabaseRestore(dataDir, Console.Out, Console.Error, TimeProvider.System);
            return result.GetValue(from) is null && !result.GetValue(yes) ? run.List() : run.Run(result.GetValue(from));
        });
        return restore;
    }
}

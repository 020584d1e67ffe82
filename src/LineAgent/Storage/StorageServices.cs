using LineAgent.Hosting;
using Microsoft.Extensions.Options;

namespace LineAgent.Storage;

public static class StorageServices
{
    /// <summary>
    /// The <see cref="Db"/> (taken under the data-dir lock, checked, backed up before a migration, migrated),
    /// Storage:* options and the scheduled backups.
    /// </summary>
    public static IServiceCollection AddLineAgentStorage(this IServiceCollection services)
    {
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.Section)
            .Validate(o => !o.Problems().Any(), "Storage settings are out of range: BackupEvery and FirstBackupAfter not negative, BackupsKept at least 1.")
            .ValidateOnStart();
        services.AddSingleton(sp =>
        {
            sp.GetRequiredService<DataDirLock>();
            var db = DatabaseStartup.Open(sp.GetRequiredService<DataDirectory>().Database, sp.GetRequiredService<IOptions<StorageOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("LineAgent.Storage.Database"));
            db.GuardCommits = true;
            return db;
        });
        services.AddSingleton<BackupService>();
        services.AddHostedService(sp => sp.GetRequiredService<BackupService>());
        services.AddSingleton<AgentExit>();
        services.AddSingleton(sp => sp.GetRequiredService<Db>().Presence);
        services.AddHostedService<DataDirWatch>();
        return services;
    }
}

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
            return DatabaseStartup.Open(sp.GetRequiredService<DataDirectory>().Database, sp.GetRequiredService<IOptions<StorageOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("LineAgent.Storage.Database"));
        });
        services.AddSingleton<BackupService>();
        services.AddHostedService(sp => sp.GetRequiredService<BackupService>());
        services.AddSingleton<AgentExit>();
        services.AddHostedService<DataDirWatch>();
        return services;
    }
}

using LineAgent.Hosting;
using LineAgent.Lines;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

public static class SchedulingServices
{
    /// <summary>
    /// Scheduling:* and the workers that send on time: start-up recovery (registered first, so it settles the previous
    /// run before the dispatcher claims), the dispatcher, the per-line pacer, maintenance.
    /// </summary>
    public static IServiceCollection AddScheduling(this IServiceCollection services)
    {
        services.AddOptions<SchedulingOptions>().BindConfiguration(SchedulingOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulingOptions>, SchedulingOptionsValidator>());
        services.TryAddSingleton<LinePacer>();
        services.TryAddSingleton<IPacer>(sp => sp.GetRequiredService<LinePacer>());
        services.TryAddSingleton<ILineUsage>(sp => sp.GetRequiredService<LinePacer>());
        services.TryAddSingleton<StartupRecovery>(); // the dispatcher waits for it (StartupRecovery.Done)
        services.AddHostedService(sp => sp.GetRequiredService<StartupRecovery>());
        services.AddHostedService<Dispatcher>();
        services.AddHostedService<Maintenance>();
        return services;
    }
}

public sealed class SchedulingOptionsValidator : IValidateOptions<SchedulingOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulingOptions o)
    {
        var problems = new List<string>();
        if (o.IdempotencyKeyLifetime < TimeSpan.FromHours(24))
            problems.Add("Scheduling:IdempotencyKeyLifetime must be at least 24 h.");
        if (o.MaxLateness < TimeSpan.Zero)
            problems.Add("Scheduling:MaxLateness must not be negative.");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

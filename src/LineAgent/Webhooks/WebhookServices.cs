using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LineAgent.Webhooks;

public static class WebhookServices
{
    /// <summary>
    /// Webhooks:*, the outbox (register this before the features that change messages: its hosted service must
    /// listen before anything changes), the sender, and the SSRF guard with its resolver.
    /// </summary>
    public static IServiceCollection AddWebhooks(this IServiceCollection services)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>());
        services.TryAddSingleton<WebhookStore>();
        services.TryAddSingleton<WebhookOutbox>();
        services.TryAddSingleton<WebhookSender>();
        services.TryAddSingleton<IWebhookResolver, DnsWebhookResolver>();
        services.TryAddSingleton<WebhookTargetGuard>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookOutbox>());
        services.AddHostedService(sp => sp.GetRequiredService<WebhookSender>());
        return services;
    }
}

public sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions o)
    {
        var problems = new List<string>();
        if (o.GiveUpAfter < TimeSpan.FromHours(24))
            problems.Add("Webhooks:GiveUpAfter must be at least 24 h.");
        if (o.Timeout <= TimeSpan.Zero)
            problems.Add("Webhooks:Timeout must be positive.");
        if (o.KeepDeliveriesFor < TimeSpan.FromDays(1))
            problems.Add("Webhooks:KeepDeliveriesFor must be at least 1 day.");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

using LineAgent.Bridge;
using LineAgent.Channels.Email;
using LineAgent.Channels.Messages;
using LineAgent.Channels.Twilio;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LineAgent.Channels;

public static class ChannelServices
{
    /// <summary>
    /// The channels and their settings: Messages.app (Bridge:*), SMTP (Email:*), Twilio (Twilio:*, with its status
    /// poller), the dry-run outbox, the router that picks one per line and type, and retries/circuit breaking (Resilience:*).
    /// </summary>
    public static IServiceCollection AddChannels(this IServiceCollection services)
    {
        services.AddOptions<EmailOptions>().BindConfiguration(EmailOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EmailOptions>, EmailOptionsValidator>());
        services.AddOptions<TwilioOptions>().BindConfiguration(TwilioOptions.Section).ValidateOnStart();
        services.AddOptions<ResilienceOptions>().BindConfiguration(ResilienceOptions.Section).ValidateOnStart();
        services.AddOptions<BridgeOptions>().BindConfiguration(BridgeOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TwilioOptions>, ChannelOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ResilienceOptions>, ChannelOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BridgeOptions>, ChannelOptionsValidator>());

        services.TryAddSingleton<DryRunOutboxChannel>();
        services.TryAddSingleton<ChannelRouter>();
        services.TryAddSingleton<ChannelResilience>();
        services.TryAddSingleton<MessagesBridge>();
        services.TryAddSingleton<MessagesHealth>();
        services.TryAddSingleton<MessagesSendsInFlight>();
        services.AddSingleton<IMessageChannel, MessagesChannel>();
        services.TryAddSingleton<SmtpEmailChannel>();
        services.AddSingleton<IMessageChannel>(sp => sp.GetRequiredService<SmtpEmailChannel>());
        services.TryAddSingleton<TwilioSmsChannel>();
        services.AddSingleton<IMessageChannel>(sp => sp.GetRequiredService<TwilioSmsChannel>());
        services.TryAddSingleton<TwilioStatusPoller>();
        services.AddHostedService(sp => sp.GetRequiredService<TwilioStatusPoller>());
        return services;
    }
}

/// <summary>Each problem names its setting, so `lineagent run` can say it in one line.</summary>
public sealed class ChannelOptionsValidator :
    IValidateOptions<TwilioOptions>, IValidateOptions<ResilienceOptions>, IValidateOptions<BridgeOptions>
{
    public ValidateOptionsResult Validate(string? name, TwilioOptions o) =>
        Result(Uri.TryCreate(o.BaseUrl, UriKind.Absolute, out _) ? null : $"Twilio:BaseUrl must be an absolute URL (got '{o.BaseUrl}').");

    public ValidateOptionsResult Validate(string? name, ResilienceOptions o) =>
        Result(
            o.MaxRetries < 0 ? "Resilience:MaxRetries must not be negative." : null,
            o.FailureRatio is not (> 0 and <= 1) ? "Resilience:FailureRatio must be above 0 and at most 1." : null,
            o.BreakDuration < TimeSpan.FromMilliseconds(500) ? "Resilience:BreakDuration must be at least 00:00:00.5." : null,
            o.AttemptTimeout <= TimeSpan.Zero ? "Resilience:AttemptTimeout must be positive." : null);

    public ValidateOptionsResult Validate(string? name, BridgeOptions o) =>
        Result(
            o.ScriptTimeout <= TimeSpan.Zero ? "Bridge:ScriptTimeout must be positive." : null,
            o.ConfirmTimeout <= TimeSpan.Zero ? "Bridge:ConfirmTimeout must be positive." : null);

    private static ValidateOptionsResult Result(params string?[] problems)
    {
        var found = problems.OfType<string>().ToList();
        return found.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(found);
    }
}

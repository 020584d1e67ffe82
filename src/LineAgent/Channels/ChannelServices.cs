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
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EmailOptions>, ChannelOptionsValidator>());

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
/// Durations are checked too: a Twilio:Timeout of 00:00:00 started fine and then failed every Twilio send as "it may have
/// been sent" (HttpClient refuses a zero timeout), and an InboundPollInterval of 00:00:00 asked Twilio 22 times a second
/// (black-box probe). The bounds are what the code under each setting accepts (HttpClient, SmtpClient, Polly's options).
public sealed class ChannelOptionsValidator :
    IValidateOptions<TwilioOptions>, IValidateOptions<ResilienceOptions>, IValidateOptions<BridgeOptions>, IValidateOptions<EmailOptions>
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    public ValidateOptionsResult Validate(string? name, TwilioOptions o) =>
        Result(
            Uri.TryCreate(o.BaseUrl, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttps || url.Scheme == Uri.UriSchemeHttp)
                ? null : $"Twilio:BaseUrl must be an absolute http or https URL (got '{o.BaseUrl}').",
            // At least a second: half of it is the connect timeout, and a few milliseconds fail every send as "may have been sent".
            o.Timeout < TimeSpan.FromSeconds(1) || o.Timeout > Day ? "Twilio:Timeout must be between 00:00:01 and a day." : null,
            o.StatusPollInterval < Poll || o.StatusPollInterval > Day ? "Twilio:StatusPollInterval must be between 00:00:00.1 and a day." : null,
            o.InboundPollInterval < Poll || o.InboundPollInterval > Day ? "Twilio:InboundPollInterval must be between 00:00:00.1 and a day." : null,
            o.ConfirmTimeout <= TimeSpan.Zero ? "Twilio:ConfirmTimeout must be above 00:00:00." : null);

    public ValidateOptionsResult Validate(string? name, ResilienceOptions o) =>
        Result(
            o.MaxRetries < 0 ? "Resilience:MaxRetries must not be negative." : null,
            o.RetryBaseDelay < TimeSpan.Zero || o.RetryBaseDelay > Day ? "Resilience:RetryBaseDelay must be between 00:00:00 and a day." : null,
            o.FailureRatio is not (> 0 and <= 1) ? "Resilience:FailureRatio must be above 0 and at most 1." : null,
            o.SamplingDuration < TimeSpan.FromMilliseconds(500) || o.SamplingDuration > Day ? "Resilience:SamplingDuration must be between 00:00:00.5 and a day." : null,
            o.BreakDuration < TimeSpan.FromMilliseconds(500) || o.BreakDuration > Day ? "Resilience:BreakDuration must be between 00:00:00.5 and a day." : null,
            o.AttemptTimeout < TimeSpan.FromMilliseconds(10) || o.AttemptTimeout > Day ? "Resilience:AttemptTimeout must be between 00:00:00.01 and a day." : null);

    public ValidateOptionsResult Validate(string? name, EmailOptions o) =>
        Result(
            o.Smtp.Timeout < TimeSpan.FromSeconds(1) || o.Smtp.Timeout > Day ? "Email:Smtp:Timeout must be between 00:00:01 and a day." : null,
            o.Smtp.IdleTimeout < TimeSpan.Zero ? "Email:Smtp:IdleTimeout must not be negative." : null);

    public ValidateOptionsResult Validate(string? name, BridgeOptions o) =>
        Result(
            // A send's outer limit is twice this plus 2 minutes, and Polly takes at most a day.
            o.ScriptTimeout <= TimeSpan.Zero || o.ScriptTimeout > TimeSpan.FromHours(11) ? "Bridge:ScriptTimeout must be above 00:00:00 and at most 11:00:00." : null,
            o.ConfirmTimeout <= TimeSpan.Zero ? "Bridge:ConfirmTimeout must be positive." : null);

    private static ValidateOptionsResult Result(params string?[] problems)
    {
        var found = problems.OfType<string>().ToList();
        return found.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(found);
    }
}

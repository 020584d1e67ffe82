using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LineAgent.Messages;

public static class MessageServices
{
    /// <summary>A message's life: the lifecycle (the only writer of `messages`), its store, intake, validation, answers, Idempotency-Key.</summary>
    public static IServiceCollection AddMessages(this IServiceCollection services)
    {
        services.TryAddSingleton<MessageNotifier>();
        services.TryAddSingleton<MessageStore>();
        services.TryAddSingleton<MessageLifecycle>();
        services.TryAddSingleton<IdempotencyStore>();
        services.TryAddSingleton<MessageValidator>();
        services.TryAddSingleton<MessageIntake>();
        services.TryAddSingleton<SendResponder>();
        services.TryAddSingleton<MessageHistory>();
        return services;
    }
}

using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LineAgent.Lines;

public static class LineServices
{
    /// <summary>Lines:* (Lines:0 keeps the default line's settings it does not set; each problem named), the registry and its views.</summary>
    public static IServiceCollection AddLines(this IServiceCollection services)
    {
        services.AddOptions<LinesOptions>()
            .Configure<IConfiguration>((o, c) => LinesOptions.Bind(c.GetSection("Lines"), o))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LinesOptions>, LinesOptionsValidator>());
        services.TryAddSingleton<LineRegistry>();
        services.TryAddSingleton<LineViews>();
        return services;
    }
}

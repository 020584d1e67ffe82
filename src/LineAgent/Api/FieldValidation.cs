namespace LineAgent.Api;

/// <summary>
/// Endpoint metadata: the route's own field checks, run on a body of its type. When a body cannot be bound (a value of the
/// wrong type, an unknown field), <see cref="BodyShapeProblems.WithFieldProblemsAsync"/> runs them on the fields that are
/// well formed, so that one 400 names every problem: `{"content":123,"type":"imesage"}` named only `content` (review).
/// </summary>
public interface IFieldValidation
{
    Type BodyType { get; }

    /// <summary>
    /// Fields a problem (by its code) is about besides its own: when one of them was left out for a problem of shape, the
    /// problem is not named (review: `{"content":"hi","leadId":42}` was also told "give recipientPhone or recipientEmail").
    /// </summary>
    IReadOnlyDictionary<string, string[]> DependsOn { get; }

    Task<IReadOnlyList<FieldProblem>> ValidateAsync(object body, HttpContext context, CancellationToken ct);
}

public sealed class FieldValidation<T>(Func<T, HttpContext, CancellationToken, Task<IReadOnlyList<FieldProblem>>> validate,
    IReadOnlyDictionary<string, string[]>? dependsOn = null) : IFieldValidation
    where T : class
{
    public Type BodyType => typeof(T);

    public IReadOnlyDictionary<string, string[]> DependsOn { get; } = dependsOn ?? new Dictionary<string, string[]>();

    public Task<IReadOnlyList<FieldProblem>> ValidateAsync(object body, HttpContext context, CancellationToken ct) => validate((T)body, context, ct);
}

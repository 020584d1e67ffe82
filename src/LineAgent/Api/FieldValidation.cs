namespace LineAgent.Api;

/// <summary>
/// Endpoint metadata: the route's own field checks, run on a body of its type. When a body cannot be bound (a value of the
/// wrong type, an unknown field), <see cref="BodyShapeProblems.WithFieldProblemsAsync"/> runs them on the fields that are
/// well formed, so that one 400 names every problem: `{"content":123,"type":"imesage"}` named only `content` (review).
/// </summary>
public interface IFieldValidation
{
    Type BodyType { get; }

    Task<IReadOnlyList<FieldProblem>> ValidateAsync(object body, HttpContext context, CancellationToken ct);
}

public sealed class FieldValidation<T>(Func<T, HttpContext, CancellationToken, Task<IReadOnlyList<FieldProblem>>> validate) : IFieldValidation
    where T : class
{
    public Type BodyType => typeof(T);

    public Task<IReadOnlyList<FieldProblem>> ValidateAsync(object body, HttpContext context, CancellationToken ct) => validate((T)body, context, ct);
}

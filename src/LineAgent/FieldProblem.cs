namespace LineAgent;

/// <summary>One bad input: the JSON field, a stable code and a sentence for people.</summary>
public sealed record FieldProblem(string Field, string Code, string Detail);

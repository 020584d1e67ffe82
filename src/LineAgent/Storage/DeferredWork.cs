namespace LineAgent.Storage;

/// <summary>
/// Upkeep that the writer may put off and then do for many rows at once, in a transaction of its own: units of work
/// say how many rows they left it (<see cref="WriteScope.Owe"/>), and the writer does it once <see cref="Batch"/> rows
/// are owed, once it has had no other work for <see cref="Idle"/>, or before a reader that needs it is answered
/// (<see cref="DbWriter.CatchUpAsync"/>). <see cref="Run"/> must find what is owed in the database itself (it may run
/// after a restart, or for rows another process wrote), so a count that is wrong only costs a run too early or too late.
/// </summary>
public sealed class DeferredWork(string name, Action<WriteScope> run, int batch, TimeSpan idle)
{
    public string Name { get; } = name;
    public Action<WriteScope> Run { get; } = run;
    public int Batch { get; } = batch > 0 ? batch : throw new ArgumentOutOfRangeException(nameof(batch));
    public TimeSpan Idle { get; } = idle > TimeSpan.Zero ? idle : throw new ArgumentOutOfRangeException(nameof(idle));

    public override string ToString() => Name;
}

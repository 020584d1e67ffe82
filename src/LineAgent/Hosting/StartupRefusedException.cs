namespace LineAgent.Hosting;

/// <summary>
/// The agent will not start, for a reason a user can fix (an exposed address without a token, a data directory
/// it cannot write): `lineagent run` prints the message as one line and exits with 78 (EX_CONFIG), no stack trace.
/// </summary>
public sealed class StartupRefusedException(string message, Exception? inner = null) : Exception(message, inner)
{
    public static StartupRefusedException? Find(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++)
        {
            if (e is StartupRefusedException found)
                return found;
            if (e is AggregateException { InnerExceptions.Count: > 0 } aggregate)
                return aggregate.InnerExceptions.Select(Find).FirstOrDefault(x => x is not null);
            e = e.InnerException;
        }
        return null;
    }
}

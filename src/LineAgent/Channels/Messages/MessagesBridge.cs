using LineAgent.Bridge;
using LineAgent.Bridge.ChatDb;
using LineAgent.Bridge.Osascript;
using Microsoft.Extensions.Options;

namespace LineAgent.Channels.Messages;

/// <summary>The agent's handle on Messages.app: its scripts (through osascript) and its database.</summary>
public sealed class MessagesBridge
{
    public MessagesBridge(IOptions<BridgeOptions> options)
    {
        Options = options.Value;
        OsascriptPath = BridgeOptions.ExpandHome(Options.OsascriptPath);
        Scripts = new MessagesScripts(new OsascriptRunner(OsascriptPath, Options.ScriptTimeout), Options.ResolveScriptsDir());
        Reader = new ChatDbReader(BridgeOptions.ExpandHome(Options.ChatDbPath));
    }

    public BridgeOptions Options { get; }
    public string OsascriptPath { get; }
    public MessagesScripts Scripts { get; }
    public ChatDbReader Reader { get; }

    /// <summary>Whether there is an osascript (or stand-in) to run at all; whether it answers is health.</summary>
    public bool IsConfigured => File.Exists(OsascriptPath);

    public static string ServiceType(string messageType) => messageType == LineAgent.Messages.MessageType.IMessage ? "iMessage" : "SMS";
}

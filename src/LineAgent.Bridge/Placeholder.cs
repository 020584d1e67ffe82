namespace LineAgent.Bridge; internal static class Placeholder {}

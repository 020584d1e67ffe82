using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml;
using System.Xml.Linq;

namespace LineAgent.Tests.Support;

/// <summary>
/// Reads an XML property list strictly (the format launchd reads): a &lt;plist version="1.0"&gt; holding one
/// value; dicts alternate &lt;key&gt; and a value. Each value comes back with the plist type name
/// (str, int, real, bool, list, dict, date, data) so tests can check types, not only text.
/// </summary>
public static class Plist
{
    public sealed record Value(string Type, JsonNode? Json);

    public static IReadOnlyDictionary<string, Value> ParseDict(string xml)
    {
        var doc = XDocument.Parse(xml, LoadOptions.None);
        var root = doc.Root ?? throw new FormatException("no root element");
        if (root.Name != "plist" || (string?)root.Attribute("version") != "1.0")
            throw new FormatException("root must be <plist version=\"1.0\">");
        var values = root.Elements().ToList();
        if (values.Count != 1 || values[0].Name != "dict")
            throw new FormatException("<plist> must hold exactly one <dict>");
        var json = (JsonObject)Read(values[0]).Json!;
        var types = Types(values[0]);
        return json.ToDictionary(p => p.Key, p => new Value(types[p.Key], p.Value?.DeepClone()));
    }

    private static Dictionary<string, string> Types(XElement dict) =>
        Pairs(dict).ToDictionary(p => p.Key, p => Read(p.Value).Type);

    private static IEnumerable<(string Key, XElement Value)> Pairs(XElement dict)
    {
        var items = dict.Elements().ToList();
        if (items.Count % 2 != 0)
            throw new FormatException("a <dict> must alternate <key> and a value");
        for (var i = 0; i < items.Count; i += 2)
        {
            if (items[i].Name != "key")
                throw new FormatException($"expected <key>, got <{items[i].Name}>");
            yield return (items[i].Value, items[i + 1]);
        }
    }

    private static Value Read(XElement e) => e.Name.LocalName switch
    {
        "string" => new("str", JsonValue.Create(e.Value)),
        "integer" => new("int", long.Parse(e.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) is var n && n is >= int.MinValue and <= int.MaxValue
            ? JsonValue.Create((int)n) : JsonValue.Create(n)),
        "real" => new("real", JsonValue.Create(double.Parse(e.Value, CultureInfo.InvariantCulture))),
        "true" when !e.HasElements && e.Value.Length == 0 => new("bool", JsonValue.Create(true)),
        "false" when !e.HasElements && e.Value.Length == 0 => new("bool", JsonValue.Create(false)),
        "date" => new("date", JsonValue.Create(XmlConvert.ToDateTime(e.Value, XmlDateTimeSerializationMode.Utc))),
        "data" => new("data", JsonValue.Create(Convert.ToBase64String(Convert.FromBase64String(e.Value.Trim())))),
        "array" => new("list", new JsonArray(e.Elements().Select(x => Read(x).Json).ToArray())),
        "dict" => new("dict", new JsonObject(Pairs(e).Select(p => KeyValuePair.Create(p.Key, Read(p.Value).Json)))),
        _ => throw new FormatException($"<{e.Name}> is not a plist value"),
    };
}

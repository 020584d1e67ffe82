using System.Buffers.Binary;
using System.Globalization;

namespace LineAgent.Storage;

/// <summary>
/// A look at a database's -wal before SQLite opens it. SQLite replays a WAL's frames up to the first one whose salts or
/// checksum do not match and takes the rest as never written (a transaction torn by a power loss), then resets the WAL
/// at its next checkpoint: a WAL damaged in the middle (a flipped sector) silently lost every transaction after the
/// damage, and the agent started with "storage ok" (black-box probe: 20 of 40 answered messages gone, the -wal deleted by
/// the clean stop that followed). The last transaction can legitimately hold a bad frame before its commit frame: SQLite
/// overwrites a page it spilled earlier in the same transaction in place and fixes the checksums only after writing the
/// commit frame (walRewriteChecksums), so a kill in between leaves exactly that, and it was never answered (review). Damage
/// is therefore a bad frame followed by at least two commit frames of the WAL's own generation (its header's salts): a
/// transaction committed after the one the bad frame is in. A WAL cut short, or damaged in its last transaction only,
/// leaves no such trace and is not caught here. Nor, the other way, can a second crash in the same window of the same WAL
/// generation be told from damage when its first bad frame is its commit frame and frames of the first crash follow: that
/// start is refused, saying how to go on (a checkpoint by sqlite3).
/// Format: sqlite.org/fileformat2.html, "WAL File Format" (32-byte header; frames of a 24-byte header and a page;
/// cumulative checksums over 32-bit words in the byte order the magic number names).
/// </summary>
public static class WalFile
{
    private const int HeaderSize = 32, FrameHeaderSize = 24;

    /// <summary>What is wrong with <paramref name="walPath"/>, read after the database's path ("… has a -wal that …"); null when nothing is.</summary>
    public static string? Damage(string walPath)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(walPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // SQLite's own open says what it cannot read (DatabaseFile.Inspect)
        }
        using (stream)
        {
            var header = new byte[HeaderSize];
            try
            {
                if (stream.Length < HeaderSize || stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false) < HeaderSize)
                    return null; // no frame was ever written: SQLite ignores it, and loses nothing
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null; // unreadable: SQLite's own open says so (review)
            }
            var magic = BinaryPrimitives.ReadUInt32BigEndian(header);
            var pageSize = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            var frameSize = (long)FrameHeaderSize + pageSize;
            var frames = (stream.Length - HeaderSize) / (frameSize > FrameHeaderSize ? frameSize : 1);
            if (magic is not (0x377f0682 or 0x377f0683) || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) != 0)
                return frames > 0 ? $"has a -wal whose header is damaged (not a WAL header), so SQLite would ignore its {stream.Length:N0} bytes" : null;
            var bigEndian = magic == 0x377f0683;
            var (s0, s1) = Checksum(header.AsSpan(0, 24), bigEndian, 0, 0);
            if (s0 != BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(24)) || s1 != BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(28)))
                return frames > 0 ? $"has a -wal whose header fails its checksum, so SQLite would ignore all {frames:N0} frames in it" : null;
            var salts = header.AsSpan(16, 8).ToArray();

            var frame = new byte[frameSize];
            long bad = -1, commitsAfter = 0, goodCommits = 0;
            var previousChained = false;
            for (long i = 0; i < frames; i++)
            {
                try
                {
                    stream.ReadExactly(frame);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return null; // unreadable (a bad sector, a file shrinking under the read): SQLite's own open says so (review)
                }
                var sameGeneration = frame.AsSpan(8, 8).SequenceEqual(salts);
                var commit = BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(4)) != 0;
                var (stored0, stored1) = (BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(16)), BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(20)));
                var (c0, c1) = Checksum(frame.AsSpan(0, 8), bigEndian, s0, s1);
                (c0, c1) = Checksum(frame.AsSpan(FrameHeaderSize), bigEndian, c0, c1);
                var chains = sameGeneration && c0 == stored0 && c1 == stored1;
                if (bad < 0)
                {
                    if (chains)
                    {
                        (s0, s1) = (c0, c1);
                        if (commit)
                            goodCommits++;
                        continue;
                    }
                    // Where SQLite stops: the end of this generation (frames of an earlier one follow: a WAL is reused from its
                    // start), or damage, in the page or in the salts (review: a damaged salt read as the end). After it, only
                    // frames that chain on from its stored checksum, as the ones before it did, are this generation's, written
                    // after it; a leftover of an earlier crash in the same generation does not chain, and ends the count (review).
                    bad = i;
                    if (commit)
                        commitsAfter++; // a damaged commit frame is a transaction lost too (review)
                    (s0, s1) = (stored0, stored1);
                    previousChained = false;
                    continue;
                }
                if (chains)
                {
                    (s0, s1) = (c0, c1);
                    if (commit)
                        commitsAfter++;
                    previousChained = true;
                    continue;
                }
                // Damage larger than a frame (a zeroed 4 KB block spans two) spoils the frames right after the first bad one
                // too: the run goes on from each one's stored checksum (review: the count stopped there and missed it). A frame
                // that does not chain after one that did is where this generation's writes ended (a leftover beyond).
                if (previousChained)
                    break;
                (s0, s1) = (stored0, stored1);
            }
            return commitsAfter >= 2
                ? string.Create(CultureInfo.InvariantCulture,
                    $"has a damaged -wal: frame {bad + 1:N0} of {frames:N0} fails its checksum, and at least {commitsAfter - 1:N0} committed transaction(s) at or after it " +
                    $"would be lost if SQLite opened it (it keeps the {goodCommits:N0} before the damage)")
                : null;
        }
    }

    /// <summary>SQLite's WAL checksum: over 32-bit words, two at a time, in the WAL's byte order, continuing from (s0, s1).</summary>
    private static (uint, uint) Checksum(ReadOnlySpan<byte> data, bool bigEndian, uint s0, uint s1)
    {
        for (var i = 0; i + 8 <= data.Length; i += 8)
        {
            var x0 = bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data[i..]) : BinaryPrimitives.ReadUInt32LittleEndian(data[i..]);
            var x1 = bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data[(i + 4)..]) : BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 4)..]);
            unchecked
            {
                s0 += x0 + s1;
                s1 += x1 + s0;
            }
        }
        return (s0, s1);
    }
}

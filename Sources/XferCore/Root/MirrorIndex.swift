import Glibc
import IPFSData

/// The publisher's index at the mirror root (`ipfs-xfer-index`): each file's CID, size and
/// SHA-256, so a client fetches `/ipfs/<cid>` at once instead of walking the directories.
///
/// Text, one file per line, `<path>\t<cid>\t<size>\t<sha256 or ->`, the path relative to the
/// root; the first line is ``header``, and other lines starting with `#` are comments, of
/// which `# import: <parameters>` names how the publisher imported the files.
public struct MirrorIndex: Sendable {
    /// The file's name at the root.
    public static let fileName = "ipfs-xfer-index"
    /// The first line of an index this version reads.
    public static let header = "# ipfs-xfer-index 1"
    /// The largest index read (an Arch mirror's is a few MB).
    public static let maximumSize = 64 << 20

    /// One file of the index.
    public struct Entry: Sendable, Equatable {
        public var cid: CID
        public var size: Int64
        public var sha256: String?
    }

    /// Why a file is not an index.
    public enum FormatError: Error, CustomStringConvertible, Equatable {
        case noHeader

        public var description: String {
            switch self {
            case .noHeader: "\(MirrorIndex.fileName) does not start with '\(MirrorIndex.header)'"
            }
        }
    }

    /// The index's bytes and a terminating NUL, for `strstr`: a lookup is made on every call
    /// pacman makes, over an index of a few MB.
    private let text: [UInt8]

    /// Takes an index's bytes; only the header is checked here, lines are read when looked up.
    public init(bytes: some Collection<UInt8>) throws(FormatError) {
        guard bytes.starts(with: Array((Self.header + "\n").utf8)) else { throw .noHeader }
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count + 1)
        text.append(contentsOf: bytes)
        text.append(0)
        self.text = text
    }

    /// The import parameters the index names (`# import: …`), when it names valid ones.
    public var importParameters: ImportParameters? {
        guard let line = line(after: Array("\n# import: ".utf8)) else { return nil }
        return try? ImportParameters(parsing: String(decoding: line, as: UTF8.self))
    }

    /// The entry for `path` (relative to the root, e.g. `core/os/x86_64/core.db`); nil when the
    /// index has none or its line is malformed.
    public func entry(for path: String) -> Entry? {
        guard let line = line(after: Array(("\n" + path + "\t").utf8)) else { return nil }
        let fields = line.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard fields.count == 3, let cid = try? CID(fields[0]), let size = Int64(fields[1]), size >= 0 else { return nil }
        let sha256 = fields[2] == "-" ? nil : fields[2]
        if let sha256, sha256.count != 64 || !sha256.allSatisfy(\.isHexDigit) { return nil }
        return Entry(cid: cid, size: size, sha256: sha256)
    }

    /// The rest of the first line that starts with `prefix` (which begins with a newline).
    private func line(after prefix: [UInt8]) -> ArraySlice<UInt8>? {
        let found: Int? = text.withUnsafeBytes { haystack in
            (prefix + [0]).withUnsafeBytes { needle in
                let base = haystack.baseAddress!.assumingMemoryBound(to: CChar.self)
                return strstr(base, needle.baseAddress!.assumingMemoryBound(to: CChar.self)).map { base.distance(to: $0) }
            }
        }
        guard let found else { return nil }
        let start = found + prefix.count
        let end = text[start...].firstIndex { $0 == UInt8(ascii: "\n") || $0 == 0 } ?? text.endIndex
        return text[start..<end]
    }
}

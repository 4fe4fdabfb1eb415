/// One served file in `StateDir/transfers.log`: when, what, how much, how long, and from where.
///
/// The line is tab-separated: `time file bytes seconds kind source`, so it can be read with
/// `cut`/`awk` and later summed by `ipfs-xfer stats`; a package no sync db listed (checked only
/// for completeness) has a seventh field, `unverified`.
public struct TransferLogEntry: Sendable, Equatable {
    public var time: Int64
    public var file: String
    public var bytes: Int64
    public var seconds: Double
    public var kind: SourceKind
    public var source: String
    /// A package that could not be checked against a sync db.
    public var unverified: Bool

    public init(
        time: Int64, file: String, bytes: Int64, seconds: Double, kind: SourceKind, source: String,
        unverified: Bool = false
    ) {
        self.time = time
        self.file = file
        self.bytes = bytes
        self.seconds = seconds
        self.kind = kind
        self.source = source
        self.unverified = unverified
    }

    /// The log line, newline included.
    public var line: String {
        let milliseconds = Int((seconds * 1000).rounded())
        return "\(time)\t\(file)\t\(bytes)\t\(milliseconds / 1000).\(String(milliseconds % 1000).leftPadded(to: 3))\t\(kind.rawValue)\t\(source)\(unverified ? "\t\(Self.unverifiedFlag)" : "")\n"
    }

    /// The seventh field of an unverified package's line.
    static let unverifiedFlag = "unverified"

    /// Parses a log line; nil for a malformed one.
    public init?(line: Substring) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 6 || (fields.count == 7 && fields[6] == Self.unverifiedFlag), let time = Int64(fields[0]), let bytes = Int64(fields[2]),
              let seconds = Double(fields[3]), let kind = SourceKind(rawValue: String(fields[4]))
        else { return nil }
        self.init(time: time, file: String(fields[1]), bytes: bytes, seconds: seconds, kind: kind, source: String(fields[5]),
            unverified: fields.count == 7)
    }
}

extension String {
    /// The string padded on the left with zeros to `width` characters.
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

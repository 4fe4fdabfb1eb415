/// One served file in `StateDir/transfers.log`: when, what, how much, how long, and from where.
///
/// The line is tab-separated: `time file bytes seconds kind source`, so it can be read with
/// `cut`/`awk` and later summed by `ipfs-xfer stats`. Flags may follow: `unverified` for a
/// package no sync db listed (checked only for completeness), `wasted=N` for bytes the source
/// sent that were not used (a losing copy, bytes past a cut, a bad range). A file several
/// sources sent has a line per source; `bytes` is what each one supplied.
public struct TransferLogEntry: Sendable, Equatable {
    public var time: Int64
    public var file: String
    public var bytes: Int64
    public var seconds: Double
    public var kind: SourceKind
    public var source: String
    /// A package that could not be checked against a sync db.
    public var unverified: Bool
    /// Bytes the source sent that were not used.
    public var wasted: Int64

    public init(
        time: Int64, file: String, bytes: Int64, seconds: Double, kind: SourceKind, source: String,
        unverified: Bool = false, wasted: Int64 = 0
    ) {
        self.time = time
        self.file = file
        self.bytes = bytes
        self.seconds = seconds
        self.kind = kind
        self.source = source
        self.unverified = unverified
        self.wasted = wasted
    }

    /// True for the line of a source none of whose bytes were used (it served no file).
    public var isWasteOnly: Bool { bytes == 0 && wasted > 0 }

    /// The log line, newline included.
    public var line: String {
        let milliseconds = Int((seconds * 1000).rounded())
        var line = "\(time)\t\(file)\t\(bytes)\t\(milliseconds / 1000).\(String(milliseconds % 1000).leftPadded(to: 3))"
        line += "\t\(kind.rawValue)\t\(source)"
        if unverified { line += "\t\(Self.unverifiedFlag)" }
        if wasted > 0 { line += "\t\(Self.wastedFlag)\(wasted)" }
        return line + "\n"
    }

    /// The flag of an unverified package's line.
    static let unverifiedFlag = "unverified"
    /// The prefix of the flag that counts wasted bytes.
    static let wastedFlag = "wasted="

    /// Parses a log line; nil for a malformed one.
    public init?(line: Substring) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count >= 6, let time = Int64(fields[0]), let bytes = Int64(fields[2]),
              let seconds = Double(fields[3]), let kind = SourceKind(rawValue: String(fields[4]))
        else { return nil }
        var unverified = false
        var wasted: Int64 = 0
        for flag in fields.dropFirst(6) {
            if flag == Self.unverifiedFlag {
                unverified = true
            } else if flag.hasPrefix(Self.wastedFlag), let count = Int64(flag.dropFirst(Self.wastedFlag.count)), count >= 0 {
                wasted = count
            } else {
                return nil
            }
        }
        self.init(
            time: time, file: String(fields[1]), bytes: bytes, seconds: seconds, kind: kind, source: String(fields[5]),
            unverified: unverified, wasted: wasted)
    }
}

extension String {
    /// The string padded on the left with zeros to `width` characters.
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// What a sync db says about one package file: enough to verify a download.
public struct PackageRecord: Sendable, Equatable {
    /// `%FILENAME%`.
    public var fileName: String
    /// `%CSIZE%`, the package file's size in bytes.
    public var size: Int64
    /// `%SHA256SUM%`, lower-case hex.
    public var sha256: String
    /// `%NAME%`, the package name (empty when the entry has none).
    public var name: String

    public init(fileName: String, size: Int64, sha256: String, name: String = "") {
        self.fileName = fileName
        self.size = size
        self.sha256 = sha256
        self.name = name
    }

    /// Parses a `desc` entry (`%KEY%` lines followed by values); nil when a field is missing.
    public init?(desc: String) {
        var fields: [String: String] = [:]
        var key: String?
        for line in desc.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("%") && line.hasSuffix("%") && line.count > 2 {
                key = String(line.dropFirst().dropLast())
            } else if let current = key, !line.isEmpty {
                if fields[current] == nil { fields[current] = String(line) }
            } else if line.isEmpty {
                key = nil
            }
        }
        guard let fileName = fields["FILENAME"], let sizeText = fields["CSIZE"], let size = Int64(sizeText),
              let sha256 = fields["SHA256SUM"]?.lowercased(), sha256.count == 64,
              sha256.allSatisfy(\.isHexDigit)
        else { return nil }
        self.init(fileName: fileName, size: size, sha256: sha256, name: fields["NAME"] ?? "")
    }
}

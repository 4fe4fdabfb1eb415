/// What a download must be before pacman may have it.
public enum Expectation: Sendable, Equatable {
    /// A package listed in the sync db: exactly this size and SHA-256.
    case exact(PackageRecord)
    /// A repo database: a complete archive (every tar header checks out, the stream ends properly).
    case database
    /// A detached signature: 1 byte to 16 KiB, as pacman and repo-add allow.
    case signature
    /// Nothing to check against: a complete transfer is all that can be asked.
    case complete

    /// The largest signature pacman accepts.
    public static let signatureLimit: Int64 = 16 * 1024
    /// The largest database accepted (pacman's own downloader caps dbs at 128 MiB).
    public static let databaseLimit: Int64 = 128 * 1024 * 1024

    /// The most bytes a correct file can have; a source that sends more is cut off.
    public var maximumSize: Int64? {
        switch self {
        case .exact(let record): record.size
        case .signature: Self.signatureLimit
        case .database: Self.databaseLimit
        case .complete: nil
        }
    }

    /// The size a correct file has, when known in advance.
    public var knownSize: Int64? {
        if case .exact(let record) = self { return record.size }
        return nil
    }

    /// Only packages are resumed: their final hash is known, so a bad prefix is always caught.
    public var isResumable: Bool {
        if case .exact = self { return true }
        return false
    }

    /// A short description for messages.
    public var summary: String {
        switch self {
        case .exact(let record): "\(record.size) bytes, sha256 \(record.sha256.prefix(12))…"
        case .database: "a complete database"
        case .signature: "a signature of at most 16 KiB"
        case .complete: "a complete transfer"
        }
    }
}

/// Why downloaded bytes were refused.
public enum VerificationError: Error, CustomStringConvertible, Equatable {
    case tooLarge(limit: Int64)
    case wrongSize(expected: Int64, actual: Int64)
    case wrongHash(expected: String, actual: String)
    case badDatabase(String)
    case empty

    public var description: String {
        switch self {
        case .tooLarge(let limit): "sent more than the \(limit) bytes the file can have"
        case .wrongSize(let expected, let actual): "size \(actual), expected \(expected)"
        case .wrongHash(let expected, let actual): "sha256 \(actual.prefix(16))…, expected \(expected.prefix(16))…"
        case .badDatabase(let message): "not a valid database (\(message))"
        case .empty: "empty file"
        }
    }
}

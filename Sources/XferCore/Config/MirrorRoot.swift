import IPFSData

/// The IPFS path a mirror is published under: `/ipfs/<cid>[/sub/path]` or `/ipns/<name>[/sub/path]`.
public struct MirrorRoot: Sendable, Equatable, CustomStringConvertible {
    /// The namespace of the path.
    public enum Namespace: String, Sendable {
        case ipfs, ipns
    }

    /// Why a MirrorRoot value was refused.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case notAnIPFSPath(String)
        case badName(String)
        case badSegment(String)

        public var description: String {
            switch self {
            case .notAnIPFSPath(let text): "'\(text)' is not an /ipfs/<cid> or /ipns/<name> path"
            case .badName(let name): "'\(name)' is not a CID or IPNS name"
            case .badSegment(let segment): "path segment '\(segment)' is not allowed"
            }
        }
    }

    public var namespace: Namespace
    /// The CID (for /ipfs) or the IPNS name or DNSLink domain (for /ipns).
    public var name: String
    /// Path segments below the name, if the mirror sits in a subdirectory.
    public var segments: [String]

    /// Parses and checks a root path.
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard text.hasPrefix("/"), parts.count >= 2, let namespace = Namespace(rawValue: parts[0]) else {
            throw .notAnIPFSPath(text)
        }
        let name = parts[1]
        let allowed: (Character) -> Bool = namespace == .ipfs
            ? { $0.isASCII && ($0.isLetter || $0.isNumber) }
            : { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }
        guard name.allSatisfy(allowed), !name.hasPrefix("."), !name.hasPrefix("-") else { throw .badName(name) }
        for segment in parts.dropFirst(2) where !PathSafety.isSafeSegment(segment) {
            throw .badSegment(segment)
        }
        self.namespace = namespace
        self.name = name
        self.segments = Array(parts.dropFirst(2))
    }

    /// The root `/ipfs/<cid>`.
    public init(cid: CID) {
        self.namespace = .ipfs
        self.name = cid.description
        self.segments = []
    }

    /// The root as a path, `/ipfs/<cid>/sub`.
    public var description: String {
        (["", namespace.rawValue, name] + segments).joined(separator: "/")
    }

    /// The path of a file below the root, given its segments (already checked as safe).
    public func path(appending relative: [String]) -> String {
        (["", namespace.rawValue, name] + segments + relative).joined(separator: "/")
    }
}

/// Where a repo's files sit, relative to a mirror's root: `$repo/os/$arch` on Arch mirrors.
///
/// The same layout places files below the IPFS mirror root and recognises them in mirror URLs
/// that no mirrorlist template matches. Each segment is a literal or a whole `$repo`/`$arch`.
public struct Layout: Sendable, Equatable, CustomStringConvertible {
    /// One segment of the layout.
    public enum Segment: Sendable, Equatable {
        case literal(String)
        case repo
        case arch
    }

    /// Why a Layout value was refused.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case empty
        case badSegment(String)
        case missingRepo

        public var description: String {
            switch self {
            case .empty: "the layout is empty"
            case .badSegment(let segment): "segment '\(segment)' must be $repo, $arch or a plain name"
            case .missingRepo: "the layout must contain $repo"
            }
        }
    }

    /// Arch Linux's `$repo/os/$arch`.
    public static let arch = Layout(segments: [.repo, .literal("os"), .arch])

    public let segments: [Segment]

    private init(segments: [Segment]) {
        self.segments = segments
    }

    /// Parses a template such as `$repo/os/$arch` or `stable/$repo/$arch`.
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty else { throw .empty }
        var segments: [Segment] = []
        for part in parts {
            switch part {
            case "$repo": segments.append(.repo)
            case "$arch": segments.append(.arch)
            default:
                guard PathSafety.isSafeSegment(part), !part.contains("$") else { throw .badSegment(String(part)) }
                segments.append(.literal(String(part)))
            }
        }
        guard segments.contains(.repo) else { throw .missingRepo }
        self.segments = segments
    }

    public var description: String {
        segments.map { segment in
            switch segment {
            case .literal(let name): name
            case .repo: "$repo"
            case .arch: "$arch"
            }
        }.joined(separator: "/")
    }

    /// The layout's segments for one repo and architecture.
    public func expand(repo: String, arch: String) -> [String] {
        segments.map { segment in
            switch segment {
            case .literal(let name): name
            case .repo: repo
            case .arch: arch
            }
        }
    }

    /// Matches the last segments of a URL path (before the file name) against the layout.
    ///
    /// Returns the repo and architecture, or nil when they do not fit. A layout without `$arch`
    /// gives an empty architecture.
    public func match(directorySegments: [Substring]) -> (repo: String, arch: String)? {
        guard directorySegments.count >= segments.count else { return nil }
        var repo: String?
        var arch = ""
        for (segment, value) in zip(segments, directorySegments.suffix(segments.count)) {
            switch segment {
            case .literal(let name): guard value == name else { return nil }
            case .repo: repo = String(value)
            case .arch: arch = String(value)
            }
        }
        return repo.map { ($0, arch) }
    }
}

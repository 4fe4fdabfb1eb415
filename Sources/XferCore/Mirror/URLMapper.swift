/// Turns the URL pacman asks for into a repo file and the mirror URLs that also serve it.
public struct URLMapper: Sendable {
    /// Why a URL was refused outright.
    public enum MappingError: Error, CustomStringConvertible, Equatable {
        case unsafeName(url: String, part: String)

        public var description: String {
            switch self {
            case .unsafeName(let url, let part):
                "refusing \(url): '\(part)' is not a plain file or directory name"
            }
        }
    }

    /// What a URL maps to.
    public struct Mapping: Sendable, Equatable {
        /// The repo file, or nil when the URL is not under any known mirror layout.
        public var file: RepoFile?
        /// HTTP URLs to try, in order: the requested URL first, then the other mirrors.
        public var mirrorURLs: [String]
    }

    public let mirrorlist: Mirrorlist
    public let layout: Layout

    public init(mirrorlist: Mirrorlist, layout: Layout) {
        self.mirrorlist = mirrorlist
        self.layout = layout
    }

    /// Maps `url`; throws only when the URL names something that could escape a root.
    public func map(_ url: String) throws(MappingError) -> Mapping {
        let fileName = url.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        if fileName.contains("?") || fileName.contains("#") {
            return Mapping(file: nil, mirrorURLs: [url])  // a query is no repo file; plain HTTP only
        }
        guard PathSafety.isSafeSegment(fileName) else { throw .unsafeName(url: url, part: fileName) }

        var found: (repo: String, arch: String)?
        for server in mirrorlist.servers {
            if let match = server.match(url: url) {
                found = (match.repo, match.arch)
                break
            }
        }
        if found == nil, let path = Self.path(of: url) {
            let directories = path.split(separator: "/", omittingEmptySubsequences: true).dropLast()
            found = layout.match(directorySegments: Array(directories))
        }
        guard let (repo, arch) = found else {
            return Mapping(file: nil, mirrorURLs: [url])
        }
        for part in [repo, arch] where !part.isEmpty && !PathSafety.isSafeSegment(part) {
            throw .unsafeName(url: url, part: part)
        }
        let file = RepoFile(repo: repo, arch: arch, fileName: fileName)
        var urls = [url]
        for server in mirrorlist.servers {
            let candidate = server.url(repo: repo, arch: arch, file: fileName)
            if !urls.contains(candidate) { urls.append(candidate) }
        }
        return Mapping(file: file, mirrorURLs: urls)
    }

    /// The path part of a URL (`scheme://host[:port]/path` or `file:///path`), without query.
    static func path(of url: String) -> Substring? {
        guard let schemeEnd = url.firstRange(ofLiteral: "://") else { return nil }
        let afterScheme = url[schemeEnd.upperBound...]
        guard let slash = afterScheme.firstIndex(of: "/") else { return nil }
        return afterScheme[slash...]
    }
}

/// A file of a pacman repo, as named by a download URL: which repo, which architecture, which file.
public struct RepoFile: Sendable, Equatable {
    /// What kind of file it is, which decides how it is verified and whether it may be resumed.
    public enum Kind: Sendable, Equatable {
        /// `<repo>.db` or `<repo>.files`.
        case database
        /// A detached signature (`*.sig`).
        case signature
        /// A package (`*.pkg.tar.*`), verified against the sync db.
        case package
        /// Anything else under the repo directory.
        case other
    }

    public var repo: String
    /// The architecture; empty for layouts without `$arch`.
    public var arch: String
    public var fileName: String

    public init(repo: String, arch: String, fileName: String) {
        self.repo = repo
        self.arch = arch
        self.fileName = fileName
    }

    /// A database or a database's signature: what decides which packages a transaction sees.
    public var isDatabaseOrItsSignature: Bool {
        let name = fileName.hasSuffix(".sig") ? String(fileName.dropLast(4)) : fileName
        return name == "\(repo).db" || name == "\(repo).files"
    }

    public var kind: Kind {
        if fileName == "\(repo).db" || fileName == "\(repo).files" { return .database }
        if fileName.hasSuffix(".sig") { return .signature }
        if fileName.firstRange(ofLiteral: ".pkg.tar") != nil { return .package }
        return .other
    }
}

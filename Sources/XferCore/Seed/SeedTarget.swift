/// A file the seeder puts into kubo: a package, or its signature, in pacman's cache.
public struct SeedTarget: Sendable, Equatable, Hashable {
    public var repo: String
    public var arch: String
    public var fileName: String
    /// Where the file is in pacman's cache.
    public var cachePath: String
    /// When it was queued (Unix seconds).
    public var queuedAt: Int64

    public init(repo: String, arch: String, fileName: String, cachePath: String, queuedAt: Int64) {
        self.repo = repo
        self.arch = arch
        self.fileName = fileName
        self.cachePath = cachePath
        self.queuedAt = queuedAt
    }

    /// Its path below the mirror root.
    public func relativePath(layout: Layout) -> String {
        (layout.expand(repo: repo, arch: arch) + [fileName]).joined(separator: "/")
    }

    /// Its line in the queue file.
    var fields: [String] { [fileName, repo, arch, cachePath, String(queuedAt)] }

    /// Reads a queue line; nil when malformed or unsafe.
    init?(fields: [Substring]) {
        guard fields.count == 5, fields[3].hasPrefix("/"), let queuedAt = Int64(fields[4]) else { return nil }
        for part in fields.prefix(3) where !part.isEmpty && !PathSafety.isSafeSegment(String(part)) { return nil }
        self.init(repo: String(fields[1]), arch: String(fields[2]), fileName: String(fields[0]), cachePath: String(fields[3]),
                  queuedAt: queuedAt)
    }
}

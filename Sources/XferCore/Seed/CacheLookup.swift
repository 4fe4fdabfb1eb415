/// Finds the files pacman cached for a transaction's packages: the names an alpm hook gets on
/// stdin, looked up in the sync dbs (`%FILENAME%`) and then in each CacheDir, `.sig` included.
///
/// Only files directly in a CacheDir count: pacman 7.1 leaves `download-*` directories there,
/// which are partial downloads.
public struct CacheLookup: Sendable {
    public let pacman: PacmanConfig
    /// Where the sync dbs' indexes are; nil to scan the dbs.
    public let state: StateDirectory?

    public init(pacman: PacmanConfig, state: StateDirectory?) {
        self.pacman = pacman
        self.state = state
    }

    /// The cached files of `names`, and the names with no cached file.
    public func targets(for names: [String], now: Int64) -> (targets: [SeedTarget], missing: [String]) {
        var remaining = Set(names)
        var targets: [SeedTarget] = []
        for repo in pacman.repos where !remaining.isEmpty {
            let database = IndexedSyncDatabase(path: pacman.syncDatabase(repo: repo), state: state)
            for name in remaining.sorted() {
                guard let record = (try? database.record(named: name)) ?? nil else { continue }
                guard PathSafety.isSafeSegment(record.fileName), let cached = pacman.cachedPath(of: record.fileName)
                else { continue }
                let directory = String(cached.dropLast(record.fileName.count))
                remaining.remove(name)
                for file in [record.fileName, record.fileName + ".sig"] where FileSystem.fileSize(directory + file) != nil {
                    targets.append(SeedTarget(
                        repo: repo, arch: pacman.architecture, fileName: file, cachePath: directory + file, queuedAt: now))
                }
            }
        }
        return (targets, names.filter(remaining.contains))
    }
}

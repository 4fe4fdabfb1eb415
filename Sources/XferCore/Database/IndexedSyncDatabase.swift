import Glibc

/// A sync db looked up through its ``SyncDatabaseIndex`` in `StateDir/dbindex/`, so that a
/// package call costs the same with Arch's 14 000-entry `extra.db` as with a one-package db.
///
/// The index is built the first time a db is needed (or as soon as ipfs-xfer has downloaded
/// it), and again whenever the db changed (its inode, size or mtime) or the index does not check
/// out. Builders take turns under a lock on the directory, so concurrent calls inflate a db
/// once. Without a writable StateDir, the db is scanned and the scan stops at the record wanted.
public struct IndexedSyncDatabase: Sendable {
    /// The db's path.
    public let path: String
    /// Where its index lives; nil to scan the db every time.
    public let state: StateDirectory?

    public init(path: String, state: StateDirectory?) {
        self.path = path
        self.state = state
    }

    /// The record of the package file `fileName`; nil when the db is missing or lists none.
    public func record(forFile fileName: String) throws -> PackageRecord? {
        try lookUp({ try $0.record(forFile: fileName) }, scan: { try $0.record(forFile: fileName) }) {
            $0.first { $0.fileName.utf8.elementsEqual(fileName.utf8) }
        }
    }

    /// The record of the package named `name` (`%NAME%`); nil when the db is missing or lists none.
    public func record(named name: String) throws -> PackageRecord? {
        try lookUp({ try $0.record(named: name) }, scan: { try $0.records(named: [name])[name] }) {
            $0.first { $0.name.utf8.elementsEqual(name.utf8) }
        }
    }

    /// Writes the index of the db that will be at `finalPath` (pacman renames `%o` there), from
    /// the records just read out of it while it was checked.
    public static func storeIndex(of records: [PackageRecord], for key: SyncDatabaseIndex.Key, state: StateDirectory) throws(SystemError) {
        try write(records, for: key, to: indexPath(for: key.path, in: indexDirectory(state)))
    }

    /// Puts the index of `records` at `indexPath` atomically, group-writable, after removing what
    /// killed writers left there.
    private static func write(_ records: [PackageRecord], for key: SyncDatabaseIndex.Key, to indexPath: String) throws(SystemError) {
        FileSystem.removeAbandonedStages(of: indexPath)
        try FileSystem.writeAtomically(indexPath, bytes: SyncDatabaseIndex.encode(records, for: key), mode: 0o664)
    }

    /// Where the index of the db at `databasePath` is kept: its name, and a hash of its path.
    static func indexPath(for databasePath: String, in directory: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
        for byte in databasePath.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "\(directory)/\(FileSystem.baseName(databasePath))-\(String(repeating: "0", count: 16 - hex.count))\(hex).idx"
    }

    /// `StateDir/dbindex`, created group-writable and setgid (as StateDir is) so that root and
    /// pacman's DownloadUser share it.
    static func indexDirectory(_ state: StateDirectory) throws(SystemError) -> String {
        let directory = state.path + "/dbindex"
        if !FileSystem.isDirectory(directory) {
            if mkdir(directory, 0o2775) == 0 {
                chmod(directory, 0o2775)  // whatever the umask
            } else if errno != EEXIST {
                throw SystemError("mkdir \(directory)")
            }
        }
        return directory
    }

    /// The index's answer when it has a valid one; otherwise builds it (once, under the lock)
    /// and answers from the records read; without StateDir, the scan's answer.
    private func lookUp(
        _ indexed: (SyncDatabaseIndex) throws -> PackageRecord?,
        scan: (SyncDatabase) throws -> PackageRecord?,
        inRecords: ([PackageRecord]) -> PackageRecord?
    ) throws -> PackageRecord? {
        guard let key = SyncDatabaseIndex.Key(path: path) else { return nil }
        guard let state, let directory = try? Self.indexDirectory(state) else { return try scan(SyncDatabase(path: path)) }
        let indexPath = Self.indexPath(for: path, in: directory)
        if case .some(let answer) = Self.answer(indexPath, key, indexed) { return answer }
        // An index that cannot be written would be built again by every call: scanning is cheaper.
        guard access(directory, W_OK) == 0 else { return try scan(SyncDatabase(path: path)) }
        let lock = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if lock >= 0 { close(lock) } }
        if lock >= 0 { flock(lock, LOCK_EX) }
        // Another call may have built it while this one waited.
        if case .some(let answer) = Self.answer(indexPath, key, indexed) { return answer }
        let records: [PackageRecord]
        do {
            records = try SyncDatabase(path: path).completeRecords()
        } catch {
            return try scan(SyncDatabase(path: path))  // a db pacman may still read in part
        }
        // A db replaced while it was read is indexed by the next call, under its new key.
        if SyncDatabaseIndex.Key(path: path) == key {
            try? Self.write(records, for: key, to: indexPath)
        }
        return inRecords(records)
    }

    /// What the index at `indexPath` says (a record or none), when it is valid for `key` and
    /// checks out; nil when there is no such index.
    private static func answer(
        _ indexPath: String, _ key: SyncDatabaseIndex.Key,
        _ indexed: (SyncDatabaseIndex) throws -> PackageRecord?
    ) -> PackageRecord?? {
        do {
            guard let index = try SyncDatabaseIndex.open(indexPath, for: key) else { return nil }
            return .some(try indexed(index))
        } catch {
            return nil
        }
    }
}

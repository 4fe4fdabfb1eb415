import Glibc

/// A repo's sync db (`core.db`: a tar of `<name>-<version>/desc` entries, compressed with gzip,
/// zstd, xz or bzip2), read as pacman reads it.
public struct SyncDatabase: Sendable {
    /// Why a db could not be read.
    public struct ReadError: Error, CustomStringConvertible, Equatable {
        public var path: String
        public var message: String

        public var description: String { "\(path): \(message)" }
    }

    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// Finds the record for a package file name, or nil when the db has none.
    ///
    /// Only `desc` entries whose directory name is a prefix of the file name are collected, and
    /// reading stops at the match.
    public func record(forFile fileName: String) throws -> PackageRecord? {
        var found: PackageRecord?
        try stream(wants: { name in
            name.hasSuffix("/desc") && fileName.hasPrefix(name.dropLast("/desc".count) + "-")
        }, handle: { _, body in
            if let record = PackageRecord(desc: body), record.fileName == fileName {
                found = record
                throw Stop()
            }
        })
        return found
    }

    /// Every record, in the order of the db, after reading the whole archive: succeeds only for
    /// a complete, well-formed db with entries.
    ///
    /// This is how a downloaded db is checked before pacman gets it (an HTML error page, a
    /// truncated download or a corrupt stream all fail here), and what its index is made of.
    public func completeRecords() throws -> [PackageRecord] {
        var found: [PackageRecord] = []
        let count = try stream(wants: { $0.hasSuffix("/desc") }, handle: { _, body in
            if let record = PackageRecord(desc: body) { found.append(record) }
        })
        guard count > 0 else { throw ReadError(path: path, message: "the database has no entries") }
        return found
    }

    /// Every record, keyed by file name.
    public func allRecords() throws -> [String: PackageRecord] {
        var found: [String: PackageRecord] = [:]
        try stream(wants: { $0.hasSuffix("/desc") }, handle: { _, body in
            if let record = PackageRecord(desc: body) { found[record.fileName] = record }
        })
        return found
    }

    /// The records of the packages named (by `%NAME%`), keyed by name.
    public func records(named names: Set<String>) throws -> [String: PackageRecord] {
        var found: [String: PackageRecord] = [:]
        try stream(wants: { $0.hasSuffix("/desc") }, handle: { _, body in
            if let record = PackageRecord(desc: body), names.contains(record.name) {
                found[record.name] = record
                if found.count == names.count { throw Stop() }
            }
        })
        return found
    }

    /// Thrown by a handler to stop reading early.
    private struct Stop: Error {}

    /// The newest modification time of its entries (Unix seconds), which tells an older copy of
    /// a repo's database from a newer one.
    public func newestEntryTime() throws -> Int {
        let tar = try readArchive(wants: { _ in false }, handle: { _, _ in })
        return tar.newestTime
    }

    /// Streams the file through the decompressor and the tar reader; returns the entry count.
    @discardableResult
    private func stream(wants: @escaping (String) -> Bool, handle: @escaping (String, [UInt8]) throws -> Void) throws -> Int {
        try readArchive(wants: wants, handle: handle).entryCount
    }

    /// Reads the whole database through a tar reader handing it the entries `wants` names.
    private func readArchive(wants: @escaping (String) -> Bool, handle: @escaping (String, [UInt8]) throws -> Void) throws -> TarReader {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let tar = TarReader(wants: wants, handle: handle)
        var decompressor: Decompressor?
        do {
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw ReadError(path: path, message: "read failed") }
                if decompressor == nil {
                    guard count > 0 else { throw ReadError(path: path, message: "the database is empty") }
                    decompressor = try Decompressor(magic: buffer.prefix(count))
                }
                if count == 0 { break }
                try buffer.withUnsafeBytes { chunk in
                    try decompressor!.feed(UnsafeRawBufferPointer(rebasing: chunk[0..<count])) { try tar.consume($0) }
                }
            }
            try decompressor?.finish { try tar.consume($0) }
        } catch is Stop {
            return tar
        } catch let failure as Decompressor.Failure {
            throw ReadError(path: path, message: failure.message)
        } catch let failure as TarReader.Failure {
            throw ReadError(path: path, message: failure.message)
        }
        guard decompressor?.isComplete == true, tar.isAtBoundary else {
            throw ReadError(path: path, message: "truncated database")
        }
        return tar
    }
}

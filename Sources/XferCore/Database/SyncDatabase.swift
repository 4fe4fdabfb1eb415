import CArchive

/// A repo's sync db (`core.db`: a tar of `<name>-<version>/desc` entries, gzip/zstd/xz/… compressed),
/// read with libarchive as pacman reads it.
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
    /// Only entries whose directory name is a prefix of the file name are decompressed into text,
    /// and reading stops at the match.
    public func record(forFile fileName: String) throws -> PackageRecord? {
        var found: PackageRecord?
        try forEachEntry { name, readText in
            guard name.hasSuffix("/desc") else { return true }
            let directory = name.dropLast("/desc".count)
            guard fileName.hasPrefix(directory + "-") else { return true }
            if let record = PackageRecord(desc: try readText()), record.fileName == fileName {
                found = record
                return false
            }
            return true
        }
        return found
    }

    /// Reads every entry header and body: succeeds only for a complete, well-formed db archive.
    ///
    /// Returns the number of entries. This is how a downloaded db is checked before pacman gets it:
    /// an HTML error page, a truncated download or a corrupt stream all fail here.
    public func validate() throws -> Int {
        var count = 0
        try forEachEntry { _, readText in
            _ = try readText()
            count += 1
            return true
        }
        guard count > 0 else { throw ReadError(path: path, message: "the database has no entries") }
        return count
    }

    /// Calls `body` with each entry's path and a function that reads that entry's text.
    /// `body` returns false to stop early.
    private func forEachEntry(
        _ body: (String, () throws -> String) throws -> Bool
    ) throws {
        guard let archive = archive_read_new() else { throw ReadError(path: path, message: "out of memory") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        func failure(_ what: String) -> ReadError {
            let detail = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return ReadError(path: path, message: "\(what): \(detail)")
        }
        guard archive_read_open_filename(archive, path, 64 * 1024) == ARCHIVE_OK else {
            throw failure("cannot open the database")
        }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw failure("corrupt database")
            }
            var name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            if name.hasPrefix("./") { name.removeFirst(2) }
            let readText = { () throws -> String in
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 16 * 1024)
                while true {
                    let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                    if count == 0 { break }
                    guard count > 0 else { throw failure("corrupt entry \(name)") }
                    bytes += buffer[0..<count]
                }
                return String(decoding: bytes, as: UTF8.self)
            }
            guard try body(name, readText) else { return }
        }
    }
}

import CCompression
import Glibc

/// A compact index of one sync db, kept in StateDir: file name → `%CSIZE%` and `%SHA256SUM%`
/// (and package name → the same record), sorted so that a lookup is a binary search over the
/// memory-mapped file, with no decompression.
///
/// Arch's `extra.db` has ~14 000 entries (~36 MB of `desc` text behind ~10 MB of gzip): scanning
/// it costs a package call ~120 ms, a lookup here a few dozen page reads.
///
/// The file is little-endian: a header (magic, the db's ``Key``, the record count, where the two
/// tables start, the total length, a CRC-32 of the header and the db's path), then the db's
/// path, then two tables of record offsets (sorted by file name and by package name), then the
/// records. Each record carries its positions in both tables and a CRC-32 of itself, so every
/// record a search looks at is checked and an offset pointing at the wrong record is caught: a
/// search either reads what was written or finds the index ``Corrupt``, with no pass over the
/// whole file.
public final class SyncDatabaseIndex: @unchecked Sendable {
    /// What an index is valid for: the db's path and what `stat` says of it. A db replaced by
    /// another (even of the same size) has another inode or mtime.
    public struct Key: Sendable, Equatable {
        public var path: String
        public var device: UInt64
        public var inode: UInt64
        public var size: UInt64
        public var modifiedSeconds: Int64
        public var modifiedNanoseconds: Int64

        /// The key of the db now at `path`, or nil when there is no regular file there.
        public init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            self.init(path: path, info: info)
        }

        /// The key of the file `info` describes, under the name `path`.
        public init(path: String, info: stat) {
            self.path = path
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = UInt64(info.st_size)
            modifiedSeconds = Int64(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
        }
    }

    /// Why an index file cannot be used (it is then rebuilt).
    public enum Corrupt: Error, CustomStringConvertible, Equatable {
        case header
        case record(offset: Int)

        public var description: String {
            switch self {
            case .header: "the index header does not check out"
            case .record(let offset): "the index record at \(offset) does not check out"
            }
        }
    }

    static let magic: [UInt8] = Array("SDBIDX01".utf8)
    static let headerLength = 76
    static let recordHeaderLength = 56

    /// Where the parts of a checked index file are.
    private struct Layout {
        var fileCount: Int
        var nameCount: Int
        var fileTable: Int
        var nameTable: Int
        var recordsStart: Int
    }

    private let base: UnsafeRawPointer
    private let length: Int
    private let layout: Layout

    /// Opens the index at `path` when it is valid for `key`; nil when there is none or it is
    /// for another db (or another state of it); throws ``Corrupt`` when its header is damaged
    /// (a truncated file included).
    public static func open(_ path: String, for key: Key) throws(Corrupt) -> SyncDatabaseIndex? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let length = Int(info.st_size)
        guard length >= headerLength else { throw .header }
        guard let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else { return nil }
        let base = UnsafeRawPointer(mapped)
        do throws(Corrupt) {
            guard let layout = try checkedLayout(base, length: length, key: key) else {
                munmap(mapped, length)
                return nil
            }
            return SyncDatabaseIndex(base: base, length: length, layout: layout)
        } catch {
            munmap(mapped, length)
            throw error
        }
    }

    private init(base: UnsafeRawPointer, length: Int, layout: Layout) {
        self.base = base
        self.length = length
        self.layout = layout
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), length)
    }

    /// The header's layout when it checks out and is for `key`; nil for a sound index of
    /// another db or of an older state of this one.
    private static func checkedLayout(_ base: UnsafeRawPointer, length: Int, key: Key) throws(Corrupt) -> Layout? {
        guard memcmp(base, magic, 8) == 0 else { throw .header }
        let fileCount = Int(u32(base, 48))
        let nameCount = Int(u32(base, 52))
        let pathLength = Int(u32(base, 56))
        let fileTable = Int(u32(base, 60))
        let nameTable = Int(u32(base, 64))
        let recordsStart = nameTable + 4 * nameCount
        guard Int(u32(base, 68)) == length, nameCount <= fileCount, headerLength + pathLength <= fileTable,
              fileTable + 4 * fileCount == nameTable, recordsStart <= length,
              crc(base, 0, 72, then: headerLength, pathLength) == u32(base, 72)
        else { throw .header }
        let path = UnsafeRawBufferPointer(start: base + headerLength, count: pathLength)
        guard path.elementsEqual(key.path.utf8), u64(base, 8) == key.device, u64(base, 16) == key.inode,
              u64(base, 24) == key.size, Int64(bitPattern: u64(base, 32)) == key.modifiedSeconds,
              Int64(bitPattern: u64(base, 40)) == key.modifiedNanoseconds
        else { return nil }
        return Layout(
            fileCount: fileCount, nameCount: nameCount, fileTable: fileTable, nameTable: nameTable,
            recordsStart: recordsStart)
    }

    /// The record of the package file `fileName`, or nil when the db lists none.
    public func record(forFile fileName: String) throws -> PackageRecord? {
        try search(table: layout.fileTable, count: layout.fileCount, positionField: 4, key: fileName)
    }

    /// The record of the package named `name` (`%NAME%`), or nil when the db lists none.
    public func record(named name: String) throws -> PackageRecord? {
        try search(table: layout.nameTable, count: layout.nameCount, positionField: 8, key: name)
    }

    /// Binary search of one table; every record looked at is checked, and must say it sits at
    /// the position its table gives it (`positionField`: 4 for the file table, 8 for names).
    /// Throws ``Corrupt`` when a record looked at does not check out.
    private func search(table: Int, count: Int, positionField: Int, key: String) throws -> PackageRecord? {
        var key = key
        return try key.withUTF8 { wanted in
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                let offset = Int(Self.u32(base, table + 4 * middle))
                let (fields, record) = try self.record(at: offset)
                guard Int(Self.u32(base, offset + positionField)) == middle else { throw Corrupt.record(offset: offset) }
                let name = positionField == 4 ? fields.fileName : fields.name
                let order = Self.compare(name, wanted)
                if order == 0 { return record() }
                if order < 0 { low = middle + 1 } else { high = middle }
            }
            return nil
        }
    }

    /// The checked record at `offset`: its names in place, and the record itself on demand.
    private func record(at offset: Int) throws(Corrupt) -> (
        fields: (fileName: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer), record: () -> PackageRecord
    ) {
        guard offset >= layout.recordsStart, offset + Self.recordHeaderLength <= length else { throw .record(offset: offset) }
        let fileNameLength = Int(Self.u16(base, offset + 52))
        let nameLength = Int(Self.u16(base, offset + 54))
        let end = offset + Self.recordHeaderLength + fileNameLength + nameLength
        guard end <= length, Self.crc(base, offset + 4, end - offset - 4) == Self.u32(base, offset) else {
            throw .record(offset: offset)
        }
        let fileName = UnsafeRawBufferPointer(start: base + offset + Self.recordHeaderLength, count: fileNameLength)
        let name = UnsafeRawBufferPointer(start: fileName.baseAddress! + fileNameLength, count: nameLength)
        let base = self.base
        return ((fileName, name), {
            let digest = UnsafeRawBufferPointer(start: base + offset + 20, count: 32)
            return PackageRecord(
                fileName: String(decoding: fileName, as: UTF8.self), size: Int64(bitPattern: Self.u64(base, offset + 12)),
                sha256: Hex.lowercase(digest), name: String(decoding: name, as: UTF8.self))
        })
    }

    /// The bytes of an index of `records` for the db `key` describes. A file name or package
    /// name listed twice keeps its first record, as a scan of the db would.
    public static func encode(_ records: [PackageRecord], for key: Key) -> [UInt8] {
        // Names are bytes (pacman compares them with strcmp), not Swift's canonically equal Strings.
        var seenFiles = Set<[UInt8]>()
        let unique = records.filter { seenFiles.insert(Array($0.fileName.utf8)).inserted }
        let byFile = unique.indices.sorted { unique[$0].fileName.utf8.lexicographicallyPrecedes(unique[$1].fileName.utf8) }
        var seenNames = Set<[UInt8]>()
        // The name table holds each name once, for the first record that carries it; unnamed
        // records and later twins are in the file table only.
        let named = unique.indices.filter { !unique[$0].name.isEmpty && seenNames.insert(Array(unique[$0].name.utf8)).inserted }
        let namedSet = Set(named)
        let byName = named.sorted { unique[$0].name.utf8.lexicographicallyPrecedes(unique[$1].name.utf8) }
        let count = unique.count
        let nameCount = byName.count
        var filePosition = [UInt32](repeating: 0, count: count)
        for (position, index) in byFile.enumerated() { filePosition[index] = UInt32(position) }
        var namePosition = [UInt32](repeating: UInt32.max, count: count)
        for (position, index) in byName.enumerated() { namePosition[index] = UInt32(position) }

        let path = Array(key.path.utf8)
        let fileTable = align(headerLength + path.count)
        let nameTable = fileTable + 4 * count
        var offset = nameTable + 4 * nameCount
        var bytes: [UInt8] = []
        bytes.reserveCapacity(offset + count * 128)
        bytes += magic
        append(UInt64(key.device), to: &bytes)
        append(UInt64(key.inode), to: &bytes)
        append(UInt64(key.size), to: &bytes)
        append(UInt64(bitPattern: key.modifiedSeconds), to: &bytes)
        append(UInt64(bitPattern: key.modifiedNanoseconds), to: &bytes)
        append(UInt32(count), to: &bytes)
        append(UInt32(nameCount), to: &bytes)
        append(UInt32(path.count), to: &bytes)
        append(UInt32(fileTable), to: &bytes)
        append(UInt32(nameTable), to: &bytes)
        append(UInt32(0), to: &bytes)  // total length, set below
        append(UInt32(0), to: &bytes)  // header CRC, set below
        bytes += path
        bytes += repeatElement(0, count: fileTable - bytes.count)
        // The tables hold offsets; the records follow in their original order.
        var offsets = [UInt32](repeating: 0, count: count)
        for index in 0..<count {
            offsets[index] = UInt32(offset)
            let record = unique[index]
            offset = align(offset + recordHeaderLength + record.fileName.utf8.count + record.name.utf8.count)
        }
        for index in byFile { append(offsets[index], to: &bytes) }
        for index in byName { append(offsets[index], to: &bytes) }
        for index in 0..<count {
            let record = unique[index]
            let start = bytes.count
            append(UInt32(0), to: &bytes)  // CRC, set below
            append(filePosition[index], to: &bytes)
            append(namedSet.contains(index) ? namePosition[index] : UInt32.max, to: &bytes)
            append(UInt64(bitPattern: record.size), to: &bytes)
            bytes += Hex.bytes(record.sha256) ?? [UInt8](repeating: 0, count: 32)
            let fileName = Array(record.fileName.utf8.prefix(Int(UInt16.max)))
            let name = Array(record.name.utf8.prefix(Int(UInt16.max)))
            append(UInt16(fileName.count), to: &bytes)
            append(UInt16(name.count), to: &bytes)
            bytes += fileName
            bytes += name
            let crc = bytes.withUnsafeBytes { Self.crc($0.baseAddress!, start + 4, bytes.count - start - 4) }
            store(crc, at: start, in: &bytes)
            bytes += repeatElement(0, count: align(bytes.count) - bytes.count)
        }
        store(UInt32(bytes.count), at: 68, in: &bytes)
        let headerCRC = bytes.withUnsafeBytes { Self.crc($0.baseAddress!, 0, 72, then: headerLength, path.count) }
        store(headerCRC, at: 72, in: &bytes)
        return bytes
    }

    private static func align(_ value: Int) -> Int { (value + 3) & ~3 }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func store(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for index in 0..<4 { bytes[offset + index] = raw[index] }
        }
    }

    private static func u16(_ base: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    private static func u32(_ base: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    private static func u64(_ base: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// zlib's CRC-32 of `count` bytes at `offset`, continued over a second range when given.
    private static func crc(_ base: UnsafeRawPointer, _ offset: Int, _ count: Int, then second: Int = 0, _ secondCount: Int = 0) -> UInt32 {
        var value = crc32(0, base.assumingMemoryBound(to: Bytef.self) + offset, uInt(count))
        if secondCount > 0 { value = crc32(value, base.assumingMemoryBound(to: Bytef.self) + second, uInt(secondCount)) }
        return UInt32(truncatingIfNeeded: value)
    }

    /// Byte order, as memcmp and kubo sort names.
    private static func compare(_ stored: UnsafeRawBufferPointer, _ wanted: UnsafeBufferPointer<UInt8>) -> Int {
        let common = min(stored.count, wanted.count)
        if common > 0 {
            let order = memcmp(stored.baseAddress!, wanted.baseAddress!, common)
            if order != 0 { return Int(order) }
        }
        return stored.count - wanted.count
    }
}

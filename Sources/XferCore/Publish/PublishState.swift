import IPFSData

/// What the last publish run left: the mirror's `lastupdate`, the roots, and per path the CID
/// of every file (with the size, mtime and inode it had) and directory (with a digest of its
/// entries and its shards), so the next run hashes only what changed and sends kubo only the
/// blocks it lacks. Written atomically; a damaged file is
/// read as far as it is whole, and a missing one means a full run.
public struct PublishState: Sendable, Equatable {
    /// A file's CID and what it looked like when it was hashed, and the symlink it was found
    /// through (whose target the next walk need not read again if it is the same link).
    public struct FileRecord: Sendable, Equatable {
        public var size: Int64
        public var modified: Int64
        public var inode: UInt64
        public var node: ImportedNode
        public var link: MirrorTree.Link? = nil
    }

    /// A directory's node, the digest of the entries it was built from, and its other blocks
    /// (a HAMT directory's inner shards), which kubo then has.
    public struct DirectoryRecord: Sendable, Equatable {
        public var digest: String
        public var node: ImportedNode
        public var shards: [CID] = []
    }

    public static let header = "# ipfs-xfer-publish 1"

    /// The import parameters the CIDs were computed with.
    public var parameters: ImportParameters?
    public var lastUpdate: Int64?
    /// When that run's walk started (nanoseconds since the epoch): a file whose inode changed
    /// after it (its ctime) is worth hashing as soon as the next walk finds it.
    public var walkStarted: Int64?
    /// The root of the last run whose blocks are in kubo and pinned.
    public var root: CID?
    /// The root the IPNS name points at.
    public var published: CID?
    /// Pinned roots, newest first (the current one included).
    public var generations: [CID] = []
    public var files: [String: FileRecord] = [:]
    public var directories: [String: DirectoryRecord] = [:]
    /// The blocks of the index file in `root`.
    public var indexBlocks: [CID] = []

    /// The blocks of the directories and the index of `root`, which kubo has (pinned): a new run
    /// need not send them again.
    public var knownBlocks: Set<CID> {
        var known = Set(indexBlocks)
        for record in directories.values {
            known.insert(record.node.cid)
            known.formUnion(record.shards)
        }
        return known
    }

    public init() {}

    /// Reads the state file's bytes (a mirror's state has tens of thousands of lines); without
    /// `records`, only its header (up to the first file or directory line).
    public init(bytes: [UInt8], records: Bool = true) {
        self = bytes.withUnsafeBufferPointer { PublishState(utf8: $0, records: records) }
    }

    private init(utf8 bytes: UnsafeBufferPointer<UInt8>, records: Bool) {
        let header = Array((Self.header + "\n").utf8)
        guard bytes.starts(with: header) else { return }
        var lineStart = header.count
        var fields: [Range<Int>] = []
        fields.reserveCapacity(8)
        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        func number(_ range: Range<Int>) -> UInt64? {
            guard !range.isEmpty, range.count <= 19 else { return nil }
            var value: UInt64 = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func cids(_ range: Range<Int>) -> [CID] {
            text(range).split(separator: ",").compactMap { try? CID(String($0)) }
        }
        if records { files.reserveCapacity(bytes.count / 120) }  // a file line is ~120 bytes: no rehashing as it fills
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            fields.removeAll(keepingCapacity: true)
            var fieldStart = lineStart
            for index in lineStart..<lineEnd where bytes[index] == UInt8(ascii: "\t") {
                fields.append(fieldStart..<index)
                fieldStart = index + 1
            }
            fields.append(fieldStart..<lineEnd)
            lineStart = lineEnd + 1
            if !records && fields[0].count == 1 { return }  // `F` and `D` lines follow the header
            switch (text(fields[0]), fields.count) {
            case ("lastupdate", 2): lastUpdate = Int64(text(fields[1]))
            case ("walked", 2): walkStarted = Int64(text(fields[1]))
            case ("import", 2): parameters = try? ImportParameters(parsing: text(fields[1]))
            case ("root", 2): root = try? CID(text(fields[1]))
            case ("published", 2): published = try? CID(text(fields[1]))
            case ("generation", 2): if let cid = try? CID(text(fields[1])) { generations.append(cid) }
            case ("F", 8), ("F", 11):
                guard let size = number(fields[2]), let modified = number(fields[3]), let inode = number(fields[4]),
                      let tsize = number(fields[6]), let fileSize = number(fields[7]),
                      let cid = try? CID(text(fields[5])) else { continue }
                var link: MirrorTree.Link?
                if fields.count == 11 {
                    guard let linkInode = number(fields[8]), let changed = number(fields[9]), !fields[10].isEmpty else { continue }
                    link = MirrorTree.Link(inode: linkInode, changed: Int64(changed), target: text(fields[10]))
                }
                files[text(fields[1])] = FileRecord(
                    size: Int64(size), modified: Int64(modified), inode: inode,
                    node: ImportedNode(cid: cid, tsize: tsize, fileSize: fileSize), link: link)
            case ("D", 5), ("D", 6):
                guard let tsize = number(fields[4]), let cid = try? CID(text(fields[3])) else { continue }
                directories[text(fields[1])] = DirectoryRecord(
                    digest: text(fields[2]), node: ImportedNode(cid: cid, tsize: tsize, fileSize: 0),
                    shards: fields.count == 6 ? cids(fields[5]) : [])
            case ("index", 2):
                indexBlocks = cids(fields[1])
            default:
                continue
            }
        }
    }

    /// The state file's text.
    public var text: String { String(decoding: encodedHeader() + records, as: UTF8.self) }

    /// The state file's first lines, before its file and directory lines (``records``, most of
    /// the file and written apart: they are the same in both saves of a run).
    public func encodedHeader() -> [UInt8] {
        var lines = [Self.header]
        if let parameters { lines.append("import\t\(parameters)") }
        if let lastUpdate { lines.append("lastupdate\t\(lastUpdate)") }
        if let walkStarted { lines.append("walked\t\(walkStarted)") }
        if let root { lines.append("root\t\(root)") }
        if let published { lines.append("published\t\(published)") }
        lines += generations.map { "generation\t\($0)" }
        if !indexBlocks.isEmpty { lines.append("index\t" + indexBlocks.map(\.description).joined(separator: ",")) }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// The file and directory lines (from ``files`` and ``directories``), sorted by path.
    public var records: [UInt8] { records(files: files.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }) }

    /// The file and directory lines: `files` in their order (as the walk found them: sorting
    /// 40 000 paths costs more than writing them), then ``directories`` sorted by path.
    public func records(files: [(path: String, record: FileRecord)]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(files.count * 256 + directories.count * 512)  // (pages reserved, not used, cost nothing)
        func field(_ text: String) {
            bytes.append(UInt8(ascii: "\t"))
            bytes.append(contentsOf: text.utf8)
        }
        for (path, record) in files {
            bytes.append(UInt8(ascii: "F"))
            field(path)
            field(String(record.size))
            field(String(record.modified))
            field(String(record.inode))
            field(record.node.cid.description)
            field(String(record.node.tsize))
            field(String(record.node.fileSize))
            // (A target with a tab or a line break in it is not kept: the next walk reads it.)
            if let link = record.link, !link.target.utf8.contains(where: { $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\n") }) {
                field(String(link.inode))
                field(String(link.changed))
                field(link.target)
            }
            bytes.append(UInt8(ascii: "\n"))
        }
        for (path, record) in directories.sorted(by: { $0.key < $1.key }) {
            bytes.append(UInt8(ascii: "D"))
            field(path)
            field(record.digest)
            field(record.node.cid.description)
            field(String(record.node.tsize))
            if !record.shards.isEmpty { field(record.shards.map(\.description).joined(separator: ",")) }
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }
}

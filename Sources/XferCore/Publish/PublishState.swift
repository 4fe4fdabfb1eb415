import IPFSData

/// What the last publish run left: the mirror's `lastupdate`, the roots, and per path the CID
/// of every file (with the size, mtime and inode it had) and directory (with a digest of its
/// entries), so the next run hashes only what changed. Written atomically; a damaged file is
/// read as far as it is whole, and a missing one means a full run.
public struct PublishState: Sendable, Equatable {
    /// A file's CID and what it looked like when it was hashed.
    public struct FileRecord: Sendable, Equatable {
        public var size: Int64
        public var modified: Int64
        public var inode: UInt64
        public var node: ImportedNode
    }

    /// A directory's node and the digest of the entries it was built from.
    public struct DirectoryRecord: Sendable, Equatable {
        public var digest: String
        public var node: ImportedNode
    }

    public static let header = "# ipfs-xfer-publish 1"

    /// The import parameters the CIDs were computed with.
    public var parameters: ImportParameters?
    public var lastUpdate: Int64?
    /// The root of the last run whose blocks are in kubo and pinned.
    public var root: CID?
    /// The root the IPNS name points at.
    public var published: CID?
    /// Pinned roots, newest first (the current one included).
    public var generations: [CID] = []
    public var files: [String: FileRecord] = [:]
    public var directories: [String: DirectoryRecord] = [:]

    public init() {}

    /// Reads the state file's text.
    public init(text: String) {
        guard text.hasPrefix(Self.header + "\n") else { return }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch (fields.first, fields.count) {
            case ("lastupdate", 2): lastUpdate = Int64(fields[1])
            case ("import", 2): parameters = try? ImportParameters(parsing: fields[1])
            case ("root", 2): root = try? CID(fields[1])
            case ("published", 2): published = try? CID(fields[1])
            case ("generation", 2): if let cid = try? CID(fields[1]) { generations.append(cid) }
            case ("F", 8):
                guard let size = Int64(fields[2]), let modified = Int64(fields[3]), let inode = UInt64(fields[4]),
                      let node = Self.node(fields[5], fields[6], fields[7]) else { continue }
                files[fields[1]] = FileRecord(size: size, modified: modified, inode: inode, node: node)
            case ("D", 5):
                guard let node = Self.node(fields[3], fields[4], "0") else { continue }
                directories[fields[1]] = DirectoryRecord(digest: fields[2], node: node)
            default:
                continue
            }
        }
    }

    /// The state file's text.
    public var text: String {
        var lines = [Self.header]
        if let parameters { lines.append("import\t\(parameters)") }
        if let lastUpdate { lines.append("lastupdate\t\(lastUpdate)") }
        if let root { lines.append("root\t\(root)") }
        if let published { lines.append("published\t\(published)") }
        lines += generations.map { "generation\t\($0)" }
        for (path, record) in files.sorted(by: { $0.key < $1.key }) {
            lines.append("F\t\(path)\t\(record.size)\t\(record.modified)\t\(record.inode)\t\(record.node.cid)\t\(record.node.tsize)\t\(record.node.fileSize)")
        }
        for (path, record) in directories.sorted(by: { $0.key < $1.key }) {
            lines.append("D\t\(path)\t\(record.digest)\t\(record.node.cid)\t\(record.node.tsize)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func node(_ cid: String, _ tsize: String, _ fileSize: String) -> ImportedNode? {
        guard let cid = try? CID(cid), let tsize = UInt64(tsize), let fileSize = UInt64(fileSize) else { return nil }
        return ImportedNode(cid: cid, tsize: tsize, fileSize: fileSize)
    }
}

import Crypto
import Glibc

/// Imports one file into a balanced UnixFS DAG exactly as kubo's balanced builder does.
///
/// The file is read one chunk at a time (constant memory: one chunk plus, per tree level, at
/// most `maxLinks` pending links). Leaves are raw blocks or dag-pb `File` nodes; every parent is
/// a `File` node with one `blocksizes` entry per child, its links named "".
public struct FileImporter: Sendable {
    public let parameters: ImportParameters
    public let sink: any BlockSink

    public init(parameters: ImportParameters, sink: any BlockSink) {
        self.parameters = parameters
        self.sink = sink
    }

    /// Why a file could not be read.
    public struct ReadError: Error, CustomStringConvertible {
        public var path: String
        public var code: Int32
        public var description: String { "\(path): \(String(cString: strerror(code)))" }
    }

    /// Imports the file open as `fd` (read to its end).
    public func importFile(fd: Int32, path: String) throws -> ImportedNode {
        var chunks = ChunkReader(fd: fd, path: path, size: parameters.chunkSize)
        return try importChunks(&chunks)
    }

    /// Imports a file made in memory (such as an index), as if it were read from disk.
    public func importBytes(_ bytes: [UInt8]) throws -> ImportedNode {
        var chunks = ChunkReader(bytes: bytes, size: parameters.chunkSize)
        return try importChunks(&chunks)
    }

    private func importChunks(_ chunks: inout ChunkReader) throws -> ImportedNode {
        guard let first = try chunks.next() else { return try leaf(ArraySlice([])) }
        var root = try leaf(first)
        var depth = 1
        while try chunks.hasMore() {
            root = try fill([root], depth: depth, from: &chunks)
            depth += 1
        }
        return root
    }

    /// boxo's `fillNodeRec`: adds children until the node is full or the file ends.
    private func fill(_ initial: [ImportedNode], depth: Int, from chunks: inout ChunkReader) throws -> ImportedNode {
        var children = initial
        while children.count < parameters.maxLinks, try chunks.hasMore() {
            if depth == 1 {
                children.append(try leaf(try chunks.next()!))
            } else {
                children.append(try fill([], depth: depth - 1, from: &chunks))
            }
        }
        return try parent(children)
    }

    private func leaf(_ chunk: ArraySlice<UInt8>) throws -> ImportedNode {
        let count = UInt64(chunk.count)
        if parameters.rawLeaves {
            let cid = chunk.withUnsafeBytes { CID.hashing(buffer: $0, codec: .raw, version: 1) }
            if sink.wantsBlocks { try sink.put(cid, Array(chunk)) }
            return ImportedNode(cid: cid, tsize: count, fileSize: count)
        }
        let cid = chunk.withUnsafeBytes { Self.leafCID(content: $0, codec: .dagPB, version: parameters.cidVersion) }
        let (prefix, suffix) = Self.leafFraming(count: count)
        if sink.wantsBlocks { try sink.put(cid, prefix + chunk + suffix) }
        return ImportedNode(cid: cid, tsize: UInt64(prefix.count + suffix.count) + count, fileSize: count)
    }

    /// The CID kubo gives a leaf holding `content`: the bytes themselves for a raw leaf, or the
    /// dag-pb `File` node around them. Lets a chunk that came from anywhere (an HTTP range) be
    /// checked against the leaf's CID.
    public static func leafCID(content: UnsafeRawBufferPointer, codec: CID.Codec, version: Int) -> CID {
        guard codec == .dagPB else { return CID.hashing(buffer: content, codec: codec, version: version) }
        // The chunk is hashed in place between its small protobuf prefix and suffix, never copied.
        let (prefix, suffix) = leafFraming(count: UInt64(content.count))
        var hasher = SHA256()
        hasher.update(data: prefix)
        hasher.update(bufferPointer: content)
        hasher.update(data: suffix)
        return CID(version: version, codec: .dagPB, hashCode: .sha2_256, digest: Array(hasher.finalize()))
    }

    /// A dag-pb leaf is `0a len { 08 02 [12 len chunk] 18 size }`: the bytes before and after the chunk.
    static func leafFraming(count: UInt64) -> (prefix: [UInt8], suffix: [UInt8]) {
        var unixfsHead: [UInt8] = [0x08, 0x02]
        if count > 0 { unixfsHead += [0x12] + Varint.encode(count) }
        let suffix: [UInt8] = [0x18] + Varint.encode(count)
        let unixfsLength = UInt64(unixfsHead.count) + count + UInt64(suffix.count)
        return ([0x0A] + Varint.encode(unixfsLength) + unixfsHead, suffix)
    }

    private func parent(_ children: [ImportedNode]) throws -> ImportedNode {
        let fileSize = children.reduce(0) { $0 + $1.fileSize }
        let data = UnixFSData(kind: .file, fileSize: fileSize, blockSizes: children.map(\.fileSize))
        let links = children.map { PBNode.Link(cid: $0.cid, name: "", tsize: $0.tsize) }
        let block = PBNode(links: links, data: data.encoded()).encoded()
        let cid = CID.hashing(block, codec: .dagPB, version: parameters.cidVersion)
        try sink.put(cid, block)
        return ImportedNode(cid: cid, tsize: UInt64(block.count) + children.reduce(0) { $0 + $1.tsize }, fileSize: fileSize)
    }
}

/// Reads fixed-size chunks (kubo's `size-N` splitter) from a file or from memory, one chunk
/// ahead so the end is known.
struct ChunkReader {
    let fd: Int32
    let path: String
    let size: Int
    /// The bytes read from memory instead of `fd`, and how far.
    private let memory: [UInt8]?
    private var offset = 0
    private var pending: ArraySlice<UInt8>?
    private var ended = false

    init(fd: Int32, path: String, size: Int) {
        self.fd = fd
        self.path = path
        self.size = size
        self.memory = nil
    }

    init(bytes: [UInt8], size: Int) {
        self.fd = -1
        self.path = "memory"
        self.size = size
        self.memory = bytes
    }

    /// True when another chunk follows.
    mutating func hasMore() throws -> Bool {
        if pending == nil && !ended { pending = try read() }
        return pending != nil
    }

    /// The next chunk, or nil at the end.
    mutating func next() throws -> ArraySlice<UInt8>? {
        if pending == nil && !ended { pending = try read() }
        defer { pending = nil }
        return pending
    }

    private mutating func read() throws -> ArraySlice<UInt8>? {
        if let memory {
            let chunk = memory[offset..<min(offset + size, memory.count)]
            offset = chunk.endIndex
            if chunk.count < size { ended = true }
            return chunk.isEmpty ? nil : chunk
        }
        var failure: Int32 = 0
        let buffer = [UInt8](unsafeUninitializedCapacity: size) { storage, initialized in
            var filled = 0
            while filled < size {
                let count = Glibc.read(fd, storage.baseAddress! + filled, size - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if count == 0 { break }
                filled += count
            }
            initialized = filled
        }
        if failure != 0 { throw FileImporter.ReadError(path: path, code: failure) }
        if buffer.count < size { ended = true }
        return buffer.isEmpty ? nil : buffer[...]
    }
}

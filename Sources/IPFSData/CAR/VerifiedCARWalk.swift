/// Verifies a trustless gateway's CAR response for `/ipfs/<root>/<path>` while it streams, the
/// way Lassie does: every block must hash to its CID and be exactly the next block a depth-first
/// walk of the path and then the file needs. File bytes are handed out only from verified blocks.
///
/// A stream that ends early leaves ``nextNeeded`` set, and the caller may fill the gap with a
/// raw block (``provide(_:for:)``); anything else that is off (a wrong, corrupt, reordered,
/// foreign, oversized or extra block, bytes after the last block) is an error.
public final class VerifiedCARWalk {
    /// Why the response was refused.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case malformed(String)
        case unexpectedBlock(expected: CID, received: CID)
        case badBlock(CID)
        case blockTooLarge(Int)
        case extraData
        case notFound(String)
        case notAFile(String)
        case invalidDAG(CID, String)
        /// The receiver of the file bytes refused them (e.g. more than the file can have).
        case rejected(String)

        public var description: String {
            switch self {
            case .malformed(let message): "malformed CAR: \(message)"
            case .unexpectedBlock(let expected, let received): "unexpected block \(received), expected \(expected)"
            case .badBlock(let cid): "block \(cid) does not match its hash"
            case .blockTooLarge(let size): "a block of \(size) bytes (limit 2 MiB)"
            case .extraData: "data after the last expected block"
            case .notFound(let path): "\(path) not found"
            case .notAFile(let path): "\(path) is not a file"
            case .invalidDAG(let cid, let message): "block \(cid): \(message)"
            case .rejected(let message): message
            }
        }
    }

    /// What a block on the stack is expected to be.
    private enum Role {
        /// A directory (or the entity itself) reached after `segment` path segments.
        case path(segment: Int)
        /// A HAMT sub-shard looked up at `depth` for path segment `segment`.
        case shard(segment: Int, depth: Int)
        /// A file node or leaf holding `size` file bytes (nil: the file root, size from itself).
        case file(size: UInt64?)
    }

    private let root: CID
    private let path: [String]
    private let emit: (UnsafeRawBufferPointer) throws -> Void
    private var stack: [(cid: CID, role: Role)]
    private var buffer: [UInt8] = []
    private var headerDone = false
    private var recent: [CID: [UInt8]] = [:]
    private var recentOrder: [CID] = []
    /// Verified file bytes handed out so far.
    public private(set) var fileBytes: UInt64 = 0

    public init(root: CID, path: [String], emit: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.root = root
        self.path = path
        self.emit = emit
        self.stack = [(root, .path(segment: 0))]
    }

    /// The next block the walk needs, or nil when the file is complete.
    public var nextNeeded: CID? { stack.last?.cid }

    /// True once every block of the file has been verified and emitted.
    public var isComplete: Bool { stack.isEmpty }

    /// True once the CAR header has been read.
    public var isStarted: Bool { headerDone }

    /// Consumes the next bytes of the CAR response.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        buffer.append(contentsOf: bytes)
        var offset = 0
        defer { buffer.removeFirst(offset) }
        while true {
            var position = offset
            guard let length = try sectionLength(at: &position) else { return }
            guard buffer.count - position >= length else { return }
            let section = buffer[position..<position + length]
            offset = position + length
            if !headerDone {
                do {
                    _ = try CARHeader.parse(Array(section))
                } catch {
                    throw .malformed("header: \(error)")
                }
                headerDone = true
                continue
            }
            var cidEnd = 0
            let cid: CID
            do {
                cid = try CID(bytes: section, offset: &cidEnd)
            } catch {
                throw .malformed("section CID: \(error)")
            }
            try accept(cid, Array(section.dropFirst(cidEnd)))
        }
    }

    /// Reads a section length at `position`; nil when more bytes are needed.
    private func sectionLength(at position: inout Int) throws(Failure) -> Int? {
        var probe = position
        let length: UInt64
        do {
            length = try Varint.decode(buffer, at: &probe)
        } catch .truncated {
            return nil
        } catch {
            throw .malformed("section length: \(error)")
        }
        guard length > 0 else { throw .malformed("empty section") }
        let limit = UInt64(CARReader.maximumBlockSize + 64)
        guard length <= (headerDone ? limit : 1 << 20) else { throw .blockTooLarge(Int(length)) }
        position = probe
        return Int(length)
    }

    /// Called at the end of the stream. A partial last section is dropped (a stream may break
    /// anywhere); what is missing is then ``nextNeeded``. A stream without a header is an error.
    /// Bytes left over once the walk is complete are refused, whatever they look like.
    public func endOfStream() throws(Failure) {
        guard headerDone else { throw .malformed("no header") }
        guard buffer.isEmpty || !stack.isEmpty else { throw .extraData }
        buffer.removeAll()
    }

    /// Fills a gap with a block fetched on its own (a `?format=raw` response).
    public func provide(_ block: [UInt8], for cid: CID) throws(Failure) {
        guard cid == stack.last?.cid else { throw .unexpectedBlock(expected: stack.last?.cid ?? root, received: cid) }
        try accept(cid, block)
    }

    private func accept(_ cid: CID, _ block: [UInt8]) throws(Failure) {
        guard block.count <= CARReader.maximumBlockSize else { throw .blockTooLarge(block.count) }
        guard let expected = stack.last else { throw .extraData }
        guard cid == expected.cid else { throw .unexpectedBlock(expected: expected.cid, received: cid) }
        guard block.withUnsafeBytes(cid.matches) else { throw .badBlock(cid) }
        stack.removeLast()
        remember(cid, block)
        try process(cid, block, role: expected.role)
        try drainKnownBlocks()
    }

    /// Blocks the walk needs again (identical chunks, identity CIDs) are taken from memory.
    private func drainKnownBlocks() throws(Failure) {
        while let next = stack.last {
            if next.cid.hashCode == .identity {
                stack.removeLast()
                try process(next.cid, next.cid.digest, role: next.role)
            } else if let block = recent[next.cid] {
                stack.removeLast()
                try process(next.cid, block, role: next.role)
            } else {
                return
            }
        }
    }

    private func remember(_ cid: CID, _ block: [UInt8]) {
        guard recent[cid] == nil else { return }
        recent[cid] = block
        recentOrder.append(cid)
        if recentOrder.count > 8 { recent[recentOrder.removeFirst()] = nil }
    }

    private func process(_ cid: CID, _ block: [UInt8], role: Role) throws(Failure) {
        switch role {
        case .path(let segment) where segment == path.count:
            try processFile(cid, block, size: nil)
        case .path(let segment):
            try descend(cid, block, segment: segment, depth: 0)
        case .shard(let segment, let depth):
            try descend(cid, block, segment: segment, depth: depth)
        case .file(let size):
            try processFile(cid, block, size: size)
        }
    }

    private func decode(_ cid: CID, _ block: [UInt8]) throws(Failure) -> (PBNode, UnixFSData)? {
        guard cid.codec == .dagPB else { return nil }
        do {
            let node = try PBNode(decoding: block[...])
            guard let data = node.data else { throw Failure.invalidDAG(cid, "no UnixFS data") }
            return (node, try UnixFSData(decoding: data[...]))
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .invalidDAG(cid, "\(error)")
        }
    }

    /// One step of path resolution: a basic directory, or one HAMT level.
    private func descend(_ cid: CID, _ block: [UInt8], segment: Int, depth: Int) throws(Failure) {
        let walked = ([root.description] + path.prefix(segment + 1)).joined(separator: "/")
        guard let (node, data) = try decode(cid, block) else { throw .notFound(walked) }
        let name = path[segment]
        switch data.kind {
        case .directory where depth == 0:
            guard let link = node.links.first(where: { $0.name == name }) else { throw .notFound(walked) }
            stack.append((link.cid, .path(segment: segment + 1)))
        case .hamtShard:
            guard data.hashType == UnixFSData.murmur3, data.fanout == 256, depth < 8 else {
                throw .invalidDAG(cid, "unsupported HAMT")
            }
            let prefix = DirectoryBuilder.hex(Int(Murmur3.hamtHash(Array(name.utf8))[depth]))
            guard let link = node.links.first(where: { $0.name.hasPrefix(prefix) }) else { throw .notFound(walked) }
            if link.name == prefix {
                stack.append((link.cid, .shard(segment: segment, depth: depth + 1)))
            } else if link.name == prefix + name {
                stack.append((link.cid, .path(segment: segment + 1)))
            } else {
                throw .notFound(walked)
            }
        default:
            throw .notFound(walked)
        }
    }

    /// A file node: its own bytes now, its children (in order) next.
    private func processFile(_ cid: CID, _ block: [UInt8], size: UInt64?) throws(Failure) {
        guard let (node, data) = try decode(cid, block) else {
            if let size, size != UInt64(block.count) { throw .invalidDAG(cid, "leaf of \(block.count) bytes, parent says \(size)") }
            try emitBytes(block[...])
            return
        }
        guard data.kind == .file || data.kind == .raw else {
            throw .notAFile(([root.description] + path).joined(separator: "/"))
        }
        guard data.blockSizes.count == node.links.count else {
            throw .invalidDAG(cid, "\(node.links.count) links but \(data.blockSizes.count) blocksizes")
        }
        let own = UInt64(data.data?.count ?? 0)
        let total = own + data.blockSizes.reduce(0, +)
        if let fileSize = data.fileSize, fileSize != total { throw .invalidDAG(cid, "filesize \(fileSize), parts add up to \(total)") }
        if let size, size != total { throw .invalidDAG(cid, "node of \(total) bytes, parent says \(size)") }
        guard node.links.allSatisfy({ $0.name.isEmpty }) else { throw .invalidDAG(cid, "a file chunk link with a name") }
        if let bytes = data.data { try emitBytes(bytes[...]) }
        for (link, size) in zip(node.links, data.blockSizes).reversed() {
            stack.append((link.cid, .file(size: size)))
        }
    }

    private func emitBytes(_ bytes: ArraySlice<UInt8>) throws(Failure) {
        do {
            try bytes.withUnsafeBytes { try emit($0) }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .rejected("\(error)")
        }
        fileBytes += UInt64(bytes.count)
    }
}

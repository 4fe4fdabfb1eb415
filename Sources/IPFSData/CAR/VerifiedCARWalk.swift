/// Verifies a trustless gateway's CAR response for `/ipfs/<root>/<path>` while it streams, the
/// way Lassie does: every block must hash to its CID and be exactly the next block a depth-first
/// walk of the path and then the file needs. File bytes are handed out only from verified blocks.
///
/// A stream that ends early leaves ``nextNeeded`` set, and the caller may fill the gap with a
/// raw block (``provide(_:for:)``); anything else that is off (a wrong, corrupt, reordered,
/// foreign, oversized or extra block, bytes after the last block) is an error.
///
/// Both CAR duplicate modes are accepted: a block the walk needs again (an identical chunk) is
/// taken from the stream when it comes again (`dups=y`) and from memory when it does not
/// (`dups=n`). A walk that starts at byte `from` (a resume, asked for with
/// ``entityBytesParameter(from:)``) expects only the blocks that hold bytes from there on, and
/// emits only those bytes.
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
        /// The response is not a CARv1 (its `Content-Type`).
        case notCAR(String)

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
            case .notCAR(let type): "the response is \(type), not a CAR"
            }
        }
    }

    /// What a block on the stack is expected to be.
    private enum Role {
        /// A directory (or the entity itself) reached after `segment` path segments.
        case path(segment: Int)
        /// A HAMT sub-shard looked up at `depth` for path segment `segment`.
        case shard(segment: Int, depth: Int)
        /// A file node or leaf holding `size` file bytes (nil: the file root, size from itself)
        /// that start at byte `offset` of the file.
        case file(size: UInt64?, offset: UInt64)
    }

    /// How many of the latest blocks are kept in memory for a walk that needs them again.
    private static let keptBlocks = 8

    private let root: CID
    private let path: [String]
    private let from: UInt64
    private let emit: (UnsafeRawBufferPointer) throws -> Void
    private var stack: [(cid: CID, role: Role)] = []
    private var buffer: [UInt8] = []
    private var headerDone = false
    private var kept: [CID: [UInt8]] = [:]
    private var keptOrder: [CID] = []
    /// Verified file bytes handed out so far (from `from` on).
    public private(set) var fileBytes: UInt64 = 0

    /// A walk of `/ipfs/<root>/<path…>` whose file bytes from byte `from` on go to `emit`.
    public init(root: CID, path: [String], from: UInt64 = 0, emit: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.root = root
        self.path = path
        self.from = from
        self.emit = emit
        stack.append((root, .path(segment: 0)))
    }

    /// The `entity-bytes` query value for a walk that starts at byte `from` (IPIP-402).
    public static func entityBytesParameter(from: UInt64) -> String {
        "\(from):*"
    }

    /// Checks a response's `Content-Type`: a CARv1, or a legacy gateway's bare CAR type.
    public static func checkContentType(_ type: String?) throws(Failure) {
        guard let type else { return }
        let parts = type.split(separator: ";").map { $0.filter { $0 != " " && $0 != "\t" }.lowercased() }
        guard parts.first == "application/vnd.ipld.car" else { throw .notCAR(type) }
        if let version = parts.first(where: { $0.hasPrefix("version=") }), version != "version=1" {
            throw .notCAR(type)
        }
    }

    /// The next block the walk needs, or nil when the file is complete.
    public var nextNeeded: CID? { stack.last?.cid }

    /// True once every block of the file has been verified and emitted.
    public var isComplete: Bool { stack.isEmpty }

    /// True once the CAR header has been read.
    public var isStarted: Bool { headerDone }

    /// Consumes the next bytes of the CAR response.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        var rest = bytes[...]
        // A section begun in an earlier call is completed first, with just the bytes it lacks.
        while !buffer.isEmpty && !rest.isEmpty {
            var position = 0
            let length = try withBuffer { raw throws(Failure) in try sectionLength(in: raw, at: &position) }
            let missing = length.map { position + $0 - buffer.count } ?? 1
            let taken = rest.prefix(missing)
            buffer.append(contentsOf: taken)
            rest = rest.dropFirst(taken.count)
            if length != nil && taken.count == missing {
                try withBuffer { raw throws(Failure) in try section(UnsafeRawBufferPointer(rebasing: raw[position...])) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        guard !rest.isEmpty else { return }
        // Whole sections are read where they arrived; only a cut-off last one is buffered.
        let input = UnsafeRawBufferPointer(rebasing: rest)
        var offset = 0
        while true {
            var position = offset
            guard let length = try sectionLength(in: input, at: &position), input.count - position >= length else { break }
            try section(UnsafeRawBufferPointer(rebasing: input[position..<position + length]))
            offset = position + length
        }
        buffer.append(contentsOf: input[offset...])
    }

    /// Runs `body` on the buffered bytes, keeping the walk's typed errors.
    private func withBuffer<T>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> T) throws(Failure) -> T {
        try buffer.withUnsafeBytes { raw in Result { () throws(Failure) in try body(raw) } }.get()
    }

    /// One complete section: the CAR header first, then blocks.
    private func section(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        guard headerDone else {
            do {
                _ = try CARHeader.parse(Array(bytes))
            } catch {
                throw .malformed("header: \(error)")
            }
            headerDone = true
            return
        }
        var cidEnd = 0
        let cid: CID
        do {
            cid = try CID(bytes: bytes, offset: &cidEnd)
        } catch {
            throw .malformed("section CID: \(error)")
        }
        try accept(cid, Array(bytes[cidEnd...]))
    }

    /// Reads a section length at `position` of `bytes`; nil when more bytes are needed.
    private func sectionLength(in bytes: UnsafeRawBufferPointer, at position: inout Int) throws(Failure) -> Int? {
        var probe = position
        let length: UInt64
        do {
            length = try Varint.decode(bytes, at: &probe)
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
        try drainKnownBlocks { _ in true }
        guard buffer.isEmpty || !stack.isEmpty else { throw .extraData }
        buffer.removeAll()
    }

    /// Fills a gap with a block fetched on its own (a `?format=raw` response).
    public func provide(_ block: [UInt8], for cid: CID) throws(Failure) {
        guard cid == stack.last?.cid else { throw .unexpectedBlock(expected: stack.last?.cid ?? root, received: cid) }
        try accept(cid, block)
        try drainKnownBlocks { _ in true }
    }

    private func accept(_ cid: CID, _ block: [UInt8]) throws(Failure) {
        guard block.count <= CARReader.maximumBlockSize else { throw .blockTooLarge(block.count) }
        try drainKnownBlocks { $0 != cid }
        guard let expected = stack.last else { throw .extraData }
        guard cid == expected.cid else { throw .unexpectedBlock(expected: expected.cid, received: cid) }
        guard block.withUnsafeBytes(cid.matches) else { throw .badBlock(cid) }
        stack.removeLast()
        keep(cid, block)
        try process(cid, block, role: expected.role)
    }

    /// Walks past the needed blocks that never come in a stream (identity CIDs) or need not
    /// come again (kept in memory), while `skip` says so for the next one.
    private func drainKnownBlocks(while skip: (CID) -> Bool) throws(Failure) {
        while let next = stack.last, skip(next.cid) {
            let block: [UInt8]
            if next.cid.hashCode == .identity {
                block = next.cid.digest
            } else if let known = kept[next.cid] {
                block = known
            } else {
                return
            }
            stack.removeLast()
            keep(next.cid, block)
            try process(next.cid, block, role: next.role)
        }
    }

    /// Keeps the latest blocks used, for a `dups=n` stream that will not send them again.
    private func keep(_ cid: CID, _ block: [UInt8]) {
        guard cid.hashCode != .identity else { return }
        if kept.updateValue(block, forKey: cid) != nil {
            keptOrder.removeAll { $0 == cid }
        }
        keptOrder.append(cid)
        if keptOrder.count > Self.keptBlocks { kept[keptOrder.removeFirst()] = nil }
    }

    private func process(_ cid: CID, _ block: [UInt8], role: Role) throws(Failure) {
        switch role {
        case .path(let segment) where segment == path.count:
            try processFile(cid, block, size: nil, offset: 0)
        case .path(let segment):
            try descend(cid, block, segment: segment, depth: 0)
        case .shard(let segment, let depth):
            try descend(cid, block, segment: segment, depth: depth)
        case .file(let size, let offset):
            try processFile(cid, block, size: size, offset: offset)
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
            let prefix = DirectoryBuilder.hex(Murmur3.hamtBucket(Murmur3.hamtBits(name.utf8), depth: depth))
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

    /// A file node: its own bytes now, its children (in order) next; a resumed walk skips the
    /// bytes and children before `from`.
    private func processFile(_ cid: CID, _ block: [UInt8], size: UInt64?, offset: UInt64) throws(Failure) {
        guard let (node, data) = try decode(cid, block) else {
            if let size, size != UInt64(block.count) { throw .invalidDAG(cid, "leaf of \(block.count) bytes, parent says \(size)") }
            try emitBytes(block[...], at: offset)
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
        if let bytes = data.data { try emitBytes(bytes[...], at: offset) }
        var end = offset + total
        for (link, size) in zip(node.links, data.blockSizes).reversed() {
            end -= size
            if end + size > from { stack.append((link.cid, .file(size: size, offset: end))) }
        }
    }

    /// Hands out the part of `bytes` (file bytes from `offset` on) that lies at or after `from`.
    private func emitBytes(_ bytes: ArraySlice<UInt8>, at offset: UInt64) throws(Failure) {
        let skip = Int(min(UInt64(bytes.count), from > offset ? from - offset : 0))
        let wanted = bytes.dropFirst(skip)
        guard !wanted.isEmpty else { return }
        do {
            try wanted.withUnsafeBytes { try emit($0) }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .rejected("\(error)")
        }
        fileBytes += UInt64(wanted.count)
    }
}

/// Where each leaf block of a UnixFS file sits: its CID, byte offset and size, in file order.
///
/// Only the inner nodes (and the first leaf, to learn the depth) are read; every other leaf is
/// known from its parent's link and `blocksizes` entry. With the layout, any byte range that
/// starts and ends on leaf boundaries can come from anywhere (an HTTP range of a mirror, a path
/// gateway) and still be checked against the DAG, one leaf at a time. Files are expected in
/// kubo's balanced layout (all leaves at one depth); anything else is refused.
public struct FileLayout: Sendable, Equatable {
    /// One leaf block.
    public struct Leaf: Sendable, Equatable {
        public var cid: CID
        public var offset: UInt64
        public var size: UInt64

        public init(cid: CID, offset: UInt64, size: UInt64) {
            self.cid = cid
            self.offset = offset
            self.size = size
        }

        /// True when `content` is this leaf's data (see ``FileImporter/leafCID(content:codec:version:)``).
        public func matches(_ content: UnsafeRawBufferPointer) -> Bool {
            guard content.count == size else { return false }
            return FileImporter.leafCID(content: content, codec: cid.codec, version: cid.version) == cid
        }
    }

    /// Why a file's layout could not be learnt.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case badBlock(CID)
        case unsupported(CID, String)

        public var description: String {
            switch self {
            case .badBlock(let cid): "block \(cid) does not match its CID"
            case .unsupported(let cid, let reason): "file layout at \(cid): \(reason)"
            }
        }
    }

    public let leaves: [Leaf]
    /// The file's size.
    public let size: UInt64

    /// Reads the layout of the file `file`; `block` fetches one block (checked here against its CID).
    public init(file: CID, block: (CID) async throws -> [UInt8]) async throws {
        func node(_ cid: CID) async throws -> (links: [PBNode.Link], sizes: [UInt64], data: [UInt8]?) {
            let bytes = try await block(cid)
            guard bytes.withUnsafeBytes({ cid.matches($0) }) else { throw Failure.badBlock(cid) }
            guard cid.codec == .dagPB else { return ([], [], bytes) }
            let pb = try PBNode(decoding: bytes[...])
            guard let data = pb.data else { throw Failure.unsupported(cid, "dag-pb node without UnixFS data") }
            let unixfs = try UnixFSData(decoding: data[...])
            guard unixfs.kind == .file || unixfs.kind == .raw else { throw Failure.unsupported(cid, "not a file") }
            guard unixfs.blockSizes.count == pb.links.count else {
                throw Failure.unsupported(cid, "\(pb.links.count) links but \(unixfs.blockSizes.count) blocksizes")
            }
            guard pb.links.isEmpty || (unixfs.data ?? []).isEmpty else {
                throw Failure.unsupported(cid, "an inner node that holds data itself")
            }
            return (pb.links, unixfs.blockSizes, unixfs.data ?? [])
        }

        let root = try await node(file)
        guard !root.links.isEmpty else {
            let size = UInt64(root.data?.count ?? 0)
            leaves = [Leaf(cid: file, offset: 0, size: size)]
            self.size = size
            return
        }
        // The depth of the leaves, from the leftmost path; the first leaf also shows that its
        // encoding is the one leafCID rebuilds.
        var depth = 1
        var current = root
        while true {
            let child = current.links[0].cid
            let next = try await node(child)
            if next.links.isEmpty {
                let content = next.data ?? []
                guard content.withUnsafeBytes({ FileImporter.leafCID(content: $0, codec: child.codec, version: child.version) })
                    == child else { throw Failure.unsupported(child, "a leaf not encoded as kubo encodes leaves") }
                break
            }
            depth += 1
            current = next
        }
        var leaves: [Leaf] = []
        var offset: UInt64 = 0
        func expand(_ inner: (links: [PBNode.Link], sizes: [UInt64], data: [UInt8]?), depth: Int, cid: CID) async throws {
            for (link, size) in zip(inner.links, inner.sizes) {
                if depth == 1 {
                    leaves.append(Leaf(cid: link.cid, offset: offset, size: size))
                    offset += size
                } else {
                    let child = try await node(link.cid)
                    guard !child.links.isEmpty else { throw Failure.unsupported(link.cid, "leaves at different depths") }
                    let start = offset
                    try await expand(child, depth: depth - 1, cid: link.cid)
                    guard offset - start == size else { throw Failure.unsupported(link.cid, "blocksizes do not add up") }
                }
            }
        }
        try await expand(root, depth: depth, cid: file)
        self.leaves = leaves
        self.size = offset
    }

    /// A leaf block's file bytes: the block itself when raw, the UnixFS data of a dag-pb leaf.
    public static func content(ofLeafBlock block: [UInt8], cid: CID) throws -> [UInt8] {
        guard cid.codec == .dagPB else { return block }
        guard let data = try PBNode(decoding: block[...]).data else { throw Failure.unsupported(cid, "dag-pb node without UnixFS data") }
        return try UnixFSData(decoding: data[...]).data ?? []
    }
}

/// Builds a UnixFS directory node from its entries: a basic directory, or a HAMT shard when the
/// directory is too big, with kubo's switching rule, link names and bitfields.
public struct DirectoryBuilder: Sendable {
    /// Why a directory could not be built.
    public enum BuildError: Error, CustomStringConvertible {
        case tooDeep

        public var description: String { "sharded directory too deep (hash collision in all 64 bits)" }
    }

    public let parameters: ImportParameters
    public let sink: any BlockSink

    public init(parameters: ImportParameters, sink: any BlockSink) {
        self.parameters = parameters
        self.sink = sink
    }

    /// Builds the directory holding `entries` (names are unique).
    public func build(_ entries: [(name: String, node: ImportedNode)]) throws -> ImportedNode {
        let sorted = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let links = sorted.map { PBNode.Link(cid: $0.node.cid, name: $0.name, tsize: $0.node.tsize) }
        // The basic directory's block is encoded only to estimate by it or to store it: a big
        // directory estimated by its links never needs it.
        let block = parameters.sizeEstimation == .block ? Self.basicBlock(links) : nil
        let estimate = block?.count ?? links.reduce(0) { $0 + $1.name.utf8.count + $1.cid.bytes.count }
        if parameters.hamtThreshold > 0 && estimate > parameters.hamtThreshold {
            let hashed = sorted.map { (name: $0.name, node: $0.node, hash: Murmur3.hamtHash($0.name.utf8)) }
            return try shard(hashed, depth: 0)
        }
        return try store(block ?? Self.basicBlock(links), childTotal: links.reduce(0) { $0 + $1.tsize })
    }

    /// A basic (unsharded) directory's block.
    private static func basicBlock(_ links: [PBNode.Link]) -> [UInt8] {
        PBNode(links: links, data: UnixFSData(kind: .directory).encoded()).encoded()
    }

    /// One HAMT level: a bucket with one entry links it (`%02X` + name); a fuller bucket is a
    /// sub-shard (`%02X`) built with the next hash byte.
    private func shard(_ entries: [(name: String, node: ImportedNode, hash: [UInt8])], depth: Int) throws -> ImportedNode {
        guard depth < 8 else { throw BuildError.tooDeep }
        var buckets: [Int: [(name: String, node: ImportedNode, hash: [UInt8])]] = [:]
        for entry in entries { buckets[Int(entry.hash[depth]), default: []].append(entry) }
        var links: [PBNode.Link] = []
        var bitfield = [UInt8](repeating: 0, count: parameters.hamtFanout / 8)
        for index in buckets.keys.sorted() {
            let bucket = buckets[index]!
            let prefix = Self.hex(index)
            bitfield[bitfield.count - 1 - index / 8] |= 1 << UInt8(index % 8)
            if bucket.count == 1 {
                links.append(PBNode.Link(cid: bucket[0].node.cid, name: prefix + bucket[0].name, tsize: bucket[0].node.tsize))
            } else {
                let child = try shard(bucket, depth: depth + 1)
                links.append(PBNode.Link(cid: child.cid, name: prefix, tsize: child.tsize))
            }
        }
        let data = UnixFSData(
            kind: .hamtShard, data: Array(bitfield.drop { $0 == 0 }), hashType: UnixFSData.murmur3,
            fanout: UInt64(parameters.hamtFanout))
        let block = PBNode(links: links, data: data.encoded()).encoded()
        return try store(block, childTotal: links.reduce(0) { $0 + $1.tsize })
    }

    private func store(_ block: [UInt8], childTotal: UInt64) throws -> ImportedNode {
        let cid = CID.hashing(block, codec: .dagPB, version: parameters.cidVersion)
        try sink.put(cid, block)
        return ImportedNode(cid: cid, tsize: UInt64(block.count) + childTotal, fileSize: 0)
    }

    /// Upper-case two-digit hex, as boxo names HAMT buckets.
    static func hex(_ value: Int) -> String {
        bucketNames[value]
    }

    /// `00` … `FF`, made once: a HAMT directory names a bucket per entry.
    private static let bucketNames: [String] = (0..<256).map { value in
        let digits = Array("0123456789ABCDEF")
        return String([digits[value >> 4], digits[value & 15]])
    }
}

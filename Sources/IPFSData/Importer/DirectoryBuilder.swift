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
        // A big directory estimated by its links is sharded without ever sorting or encoding it
        // as a basic directory.
        if parameters.hamtThreshold > 0 && parameters.sizeEstimation != .block
            && entries.reduce(0, { $0 + $1.name.utf8.count + $1.node.cid.byteCount }) > parameters.hamtThreshold {
            return try shard(entries)
        }
        let sorted = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let links = sorted.map { PBNode.Link(cid: $0.node.cid, name: $0.name, tsize: $0.node.tsize) }
        let block = PBNode(links: links, data: UnixFSData(kind: .directory).encoded()).encoded()
        if parameters.hamtThreshold > 0 && parameters.sizeEstimation == .block && block.count > parameters.hamtThreshold {
            return try shard(entries)
        }
        return try store(block, childTotal: links.reduce(0) { $0 + $1.tsize })
    }

    /// An entry with its name's HAMT hash.
    private struct Hashed {
        var name: String
        var node: ImportedNode
        var bits: UInt64

        /// The bucket at `depth`.
        func bucket(_ depth: Int) -> Int { Murmur3.hamtBucket(bits, depth: depth) }
    }

    /// The HAMT of `entries`. Sorted by hash, every bucket at every depth is a run of entries.
    private func shard(_ entries: [(name: String, node: ImportedNode)]) throws -> ImportedNode {
        let hashed = entries.map { Hashed(name: $0.name, node: $0.node, bits: Murmur3.hamtBits($0.name.utf8)) }
            .sorted { $0.bits < $1.bits }
        return try shard(hashed[...], depth: 0)
    }

    /// One HAMT level: a bucket with one entry links it (`%02X` + name); a fuller bucket is a
    /// sub-shard (`%02X`) built with the next hash byte.
    private func shard(_ entries: ArraySlice<Hashed>, depth: Int) throws -> ImportedNode {
        guard depth < 8 else { throw BuildError.tooDeep }
        var links: [PBNode.Link] = []
        links.reserveCapacity(min(entries.count, parameters.hamtFanout))
        var bitfield = [UInt8](repeating: 0, count: parameters.hamtFanout / 8)
        var start = entries.startIndex
        while start < entries.endIndex {
            let index = entries[start].bucket(depth)
            var end = start + 1
            while end < entries.endIndex && entries[end].bucket(depth) == index { end += 1 }
            let prefix = Self.hex(index)
            bitfield[bitfield.count - 1 - index / 8] |= 1 << UInt8(index % 8)
            if end - start == 1 {
                let entry = entries[start]
                links.append(PBNode.Link(cid: entry.node.cid, name: prefix + entry.name, tsize: entry.node.tsize))
            } else {
                let child = try shard(entries[start..<end], depth: depth + 1)
                links.append(PBNode.Link(cid: child.cid, name: prefix, tsize: child.tsize))
            }
            start = end
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

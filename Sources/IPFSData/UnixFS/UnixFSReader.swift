import Glibc

/// Gives blocks that were checked against their CIDs.
public protocol BlockSource {
    func block(_ cid: CID) throws -> [UInt8]
}

/// Walks UnixFS DAGs from a verified block source: resolves paths through basic directories and
/// HAMT shards, and writes files, checking every structural promise (`blocksizes` against the
/// links and the bytes, `filesize` against the total).
public struct UnixFSReader {
    /// Why a DAG could not be read.
    public enum ReadError: Error, CustomStringConvertible, Equatable {
        case notFound(String)
        case notADirectory(String)
        case malformed(CID, String)
        case symlink(String, target: String)

        public var description: String {
            switch self {
            case .notFound(let path): "\(path): no such entry"
            case .notADirectory(let path): "\(path): not a directory"
            case .malformed(let cid, let message): "block \(cid): \(message)"
            case .symlink(let path, let target): "\(path) is a symlink to \(target) (not followed)"
            }
        }
    }

    /// A decoded node.
    enum Node {
        case raw([UInt8])
        case dagPB(PBNode, UnixFSData)
    }

    public let source: any BlockSource

    public init(source: any BlockSource) {
        self.source = source
    }

    func node(_ cid: CID) throws -> Node {
        let bytes = try source.block(cid)
        switch cid.codec {
        case .raw: return .raw(bytes)
        case .dagPB:
            let node: PBNode
            do {
                node = try PBNode(decoding: bytes[...])
            } catch {
                throw ReadError.malformed(cid, error.description)
            }
            guard let data = node.data else { throw ReadError.malformed(cid, "dag-pb node without UnixFS data") }
            do {
                return .dagPB(node, try UnixFSData(decoding: data[...]))
            } catch {
                throw ReadError.malformed(cid, error.description)
            }
        default:
            throw ReadError.malformed(cid, "not UnixFS (codec \(cid.codec))")
        }
    }

    /// The CID at `segments` below `root`.
    public func resolve(root: CID, segments: [String]) throws -> CID {
        var current = root
        var walked = root.description
        for segment in segments {
            walked += "/" + segment
            guard case .dagPB(let pb, let data) = try node(current) else { throw ReadError.notADirectory(walked) }
            switch data.kind {
            case .directory:
                guard let link = pb.links.first(where: { $0.name == segment }) else { throw ReadError.notFound(walked) }
                current = link.cid
            case .hamtShard:
                current = try lookUp(segment, in: pb, data: data, cid: current, path: walked)
            case .symlink:
                throw ReadError.symlink(walked, target: String(decoding: data.data ?? [], as: UTF8.self))
            default:
                throw ReadError.notADirectory(walked)
            }
        }
        return current
    }

    /// A HAMT lookup: at each depth, the bucket named by the next byte of the name's hash.
    private func lookUp(_ name: String, in shard: PBNode, data: UnixFSData, cid: CID, path: String) throws -> CID {
        guard data.hashType == UnixFSData.murmur3, data.fanout == 256 else {
            throw ReadError.malformed(cid, "unsupported HAMT (hash \(data.hashType ?? 0), fanout \(data.fanout ?? 0))")
        }
        let hash = Murmur3.hamtBits(name.utf8)
        var current = shard
        var currentCID = cid
        for depth in 0..<8 {
            let prefix = DirectoryBuilder.hex(Murmur3.hamtBucket(hash, depth: depth))
            guard let link = current.links.first(where: { $0.name.hasPrefix(prefix) }) else { throw ReadError.notFound(path) }
            if link.name == prefix + name { return link.cid }
            guard link.name == prefix else { throw ReadError.notFound(path) }
            guard case .dagPB(let child, let childData) = try node(link.cid), childData.kind == .hamtShard else {
                throw ReadError.malformed(currentCID, "HAMT bucket \(prefix) is not a shard")
            }
            current = child
            currentCID = link.cid
        }
        throw ReadError.malformed(cid, "HAMT deeper than 8 levels")
    }

    /// Streams the file at `cid` to `write`, verifying its structure; returns its size.
    @discardableResult
    public func readFile(_ cid: CID, into write: (ArraySlice<UInt8>) throws -> Void) throws -> UInt64 {
        switch try node(cid) {
        case .raw(let bytes):
            try write(bytes[...])
            return UInt64(bytes.count)
        case .dagPB(let pb, let data):
            guard data.kind == .file || data.kind == .raw else { throw ReadError.malformed(cid, "not a file") }
            guard data.blockSizes.count == pb.links.count else {
                throw ReadError.malformed(cid, "\(pb.links.count) links but \(data.blockSizes.count) blocksizes")
            }
            var total = UInt64(data.data?.count ?? 0)
            if let bytes = data.data { try write(bytes[...]) }
            for (link, expected) in zip(pb.links, data.blockSizes) {
                guard link.name.isEmpty else { throw ReadError.malformed(cid, "a file chunk link with a name") }
                let size = try readFile(link.cid, into: write)
                guard size == expected else { throw ReadError.malformed(cid, "chunk of \(size) bytes, blocksizes says \(expected)") }
                total += size
            }
            if let fileSize = data.fileSize, fileSize != total {
                throw ReadError.malformed(cid, "file of \(total) bytes, filesize says \(fileSize)")
            }
            return total
        }
    }

    /// The entries of the directory at `cid` (basic or HAMT), names without bucket prefixes.
    public func entries(_ cid: CID) throws -> [(name: String, cid: CID)] {
        guard case .dagPB(let pb, let data) = try node(cid) else { throw ReadError.notADirectory(cid.description) }
        switch data.kind {
        case .directory:
            return pb.links.map { ($0.name, $0.cid) }
        case .hamtShard:
            var result: [(name: String, cid: CID)] = []
            for link in pb.links {
                guard link.name.count >= 2 else { throw ReadError.malformed(cid, "HAMT link name '\(link.name)'") }
                if link.name.count == 2 {
                    result += try entries(link.cid)
                } else {
                    result.append((String(link.name.dropFirst(2)), link.cid))
                }
            }
            return result
        default:
            throw ReadError.notADirectory(cid.description)
        }
    }

    /// What kind of node `cid` is: file, directory or symlink (with its target).
    public func kind(_ cid: CID) throws -> (kind: UnixFSData.Kind, symlinkTarget: String?) {
        switch try node(cid) {
        case .raw: return (.file, nil)
        case .dagPB(_, let data):
            let kind: UnixFSData.Kind = data.kind == .hamtShard ? .directory : data.kind
            return (kind, data.kind == .symlink ? String(decoding: data.data ?? [], as: UTF8.self) : nil)
        }
    }
}

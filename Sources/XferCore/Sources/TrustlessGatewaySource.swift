import CurlTransfer
import IPFSData

/// A file from a gateway we do not trust, fetched as a CAR and verified block by block.
///
/// One `?format=car&dag-scope=entity` request brings the path blocks and the whole file (from
/// the partial file's end, with `entity-bytes`, when resuming); the walk
/// (``IPFSData/VerifiedCARWalk``) hashes each block on a thread of its own
/// (``ThreadedReceiver``), requires it to be the next one the walk needs, and only then lets
/// its bytes into the file. When the stream ends early, the missing blocks are fetched one by
/// one as `?format=raw`. Anything else that is off fails the source, and the race moves on.
public struct TrustlessGatewaySource: Source {
    public let kind = SourceKind.trustless
    public let base: String
    public let root: CID
    public let segments: [String]
    public let label: String
    public let healthKey: String
    public let userAgent: String?

    public init(base: String, root: CID, segments: [String], userAgent: String?) {
        self.base = base
        self.root = root
        self.segments = segments
        self.label = "trustless \(base)"
        self.healthKey = "trustless \(base)"
        self.userAgent = userAgent
    }

    public func fetch(into file: DownloadFile, timeouts: Timeouts) async throws {
        try await Self.retrieve(
            base: base, root: root, segments: segments, from: UInt64(file.size), timeouts: timeouts, userAgent: userAgent
        ) { bytes in
            try file.receive(bytes)
        }
    }

    /// The walk starts at the range's first byte (`entity-bytes`); the receiver stops it at the end.
    public func fetch(
        range: Range<Int64>, of fileSize: Int64, into receiver: any TransferReceiver, timeouts: Timeouts
    ) async throws {
        try await Self.retrieve(
            base: base, root: root, segments: segments, from: UInt64(range.lowerBound), timeouts: timeouts,
            userAgent: userAgent
        ) { bytes in
            try receiver.receive(bytes)
        }
    }

    /// Streams `/ipfs/<root>/<segments…>` from `base` through a verified walk that hands the
    /// file's bytes from `from` on to `emit`, and fills a stream that broke off with raw blocks.
    static func retrieve(
        base: String, root: CID, segments: [String], from: UInt64, timeouts: Timeouts, userAgent: String?,
        emit: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) async throws {
        let walk = VerifiedCARWalk(root: root, path: segments, from: from, emit: emit)
        let path = segments.map(PercentEncoding.encodeSegment).joined(separator: "/")
        var query = "format=car&dag-scope=entity&car-dups=y"
        if from > 0 { query += "&entity-bytes=" + VerifiedCARWalk.entityBytesParameter(from: from) }
        let car = TransferRequest(
            url: "\(base)/ipfs/\(root)/\(path)?\(query)", connectTimeout: timeouts.connect, stallTimeout: timeouts.stall,
            headers: ["Accept: application/vnd.ipld.car; version=1; order=dfs; dups=y"], userAgent: userAgent)
        let receiver = try ThreadedReceiver { head in
            try VerifiedCARWalk.checkContentType(head.contentType)
        } consume: { bytes in
            try walk.consume(bytes)
        }
        var broken: (any Error)?
        do {
            _ = try await CurlMulti.shared.perform(car, into: receiver)
        } catch {
            broken = error
        }
        try receiver.finish()
        switch broken {
        case nil:
            try walk.endOfStream()
        case let error as TransferError where error != .cancelled && !error.isSourceFailure && walk.isStarted:
            try walk.endOfStream()  // the stream broke off after the header: fill the rest below
        case let error?:
            throw error
        }
        while let next = walk.nextNeeded {
            try walk.provide(try await rawBlock(next, from: base, timeouts: timeouts, userAgent: userAgent), for: next)
        }
    }

    /// One block as `?format=raw` (at most a CAR block's size); the caller checks it against `cid`.
    static func rawBlock(_ cid: CID, from base: String, timeouts: Timeouts, userAgent: String?) async throws -> [UInt8] {
        let block = MemoryReceiver(limit: CARReader.maximumBlockSize)
        let request = TransferRequest(
            url: "\(base)/ipfs/\(cid)?format=raw", connectTimeout: timeouts.connect, stallTimeout: timeouts.stall,
            headers: ["Accept: application/vnd.ipld.raw"], userAgent: userAgent)
        _ = try await CurlMulti.shared.perform(request, into: block)
        return block.bytes
    }
}

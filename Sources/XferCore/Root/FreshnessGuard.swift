import CurlTransfer
import IPFSData

/// Keeps an IPFS root that is behind the HTTP mirror from serving databases.
///
/// pacman takes whatever database it is given without a word, so a stale root would hold a
/// whole system back. Arch mirrors carry their sync time in `lastupdate` at the top; a database
/// comes from IPFS only when the root's is known and not older than the mirror's (or the
/// mirror's cannot be read). Packages need no guard: they are verified against the database.
struct FreshnessGuard: Sendable {
    let config: XferConfig
    let userAgent: String?

    /// The decision, given both times.
    static func allowsIPFS(root: Int64?, mirror: Int64?) -> Bool {
        guard let mirror else { return true }
        guard let root else { return false }
        return root >= mirror
    }

    /// Reads `lastupdate` from the mirror top of the first mirror URLs that follow the layout.
    func mirrorLastUpdate(mapping: URLMapper.Mapping, file: RepoFile) async -> Int64? {
        let suffix = "/" + (config.layout.expand(repo: file.repo, arch: file.arch) + [file.fileName]).joined(separator: "/")
        for url in mapping.mirrorURLs.prefix(2) where url.hasSuffix(suffix) {
            if let value = await Self.fetchNumber(String(url.dropLast(suffix.count)) + "/lastupdate", config: config,
                                                  userAgent: userAgent) {
                return value
            }
        }
        return nil
    }

    /// Reads `lastupdate` at a root through the trusted gateways, the mount, or verified from a
    /// trustless gateway.
    func rootLastUpdate(root: MirrorRoot) async -> Int64? {
        let path = root.path(appending: ["lastupdate"])
        for gateway in config.gateways {
            if let value = await Self.fetchNumber(gateway + path, config: config, userAgent: userAgent) { return value }
        }
        if let mountPoint = config.mountPoint,
           let bytes = try? await MountSource.readSmallFile(
            path: SourcePlan.mountPath(root: root, mountPoint: mountPoint, relative: ["lastupdate"]), limit: 64,
            stallTimeout: config.resolveTimeout),
           let value = Self.number(bytes) {
            return value
        }
        guard let cid = try? CID(root.name) else { return nil }
        for gateway in config.trustlessGateways {
            var bytes: [UInt8] = []
            let walk = VerifiedCARWalk(root: cid, path: root.segments + ["lastupdate"]) { chunk in
                guard bytes.count + chunk.count <= 64 else { throw MemoryReceiver.Failure.tooLarge(limit: 64) }
                bytes += chunk
            }
            let receiver = WalkReceiver(walk: walk)
            let segments = (root.segments + ["lastupdate"]).map(PercentEncoding.encodeSegment).joined(separator: "/")
            let request = TransferRequest(
                url: "\(gateway)/ipfs/\(cid)/\(segments)?format=car&dag-scope=entity",
                connectTimeout: min(config.connectTimeout, config.resolveTimeout), stallTimeout: config.resolveTimeout,
                headers: ["Accept: application/vnd.ipld.car; version=1; order=dfs; dups=y"], userAgent: userAgent)
            do {
                _ = try await CurlMulti.shared.perform(request, into: receiver)
                try walk.endOfStream()
                guard walk.isComplete else { continue }
                if let value = Self.number(bytes) { return value }
            } catch {
                continue
            }
        }
        return nil
    }

    private static func fetchNumber(_ url: String, config: XferConfig, userAgent: String?) async -> Int64? {
        let request = TransferRequest(
            url: url, connectTimeout: min(config.connectTimeout, config.resolveTimeout), stallTimeout: config.resolveTimeout,
            userAgent: userAgent)
        let receiver = MemoryReceiver(limit: 64)
        guard (try? await CurlMulti.shared.perform(request, into: receiver)) != nil else { return nil }
        return number(receiver.bytes)
    }

    /// A `lastupdate` file: a Unix time and a newline.
    static func number(_ bytes: [UInt8]) -> Int64? {
        let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        return words.count == 1 ? Int64(words[0]) : nil
    }
}

/// Feeds a small CAR response into a walk on the transfer thread.
private final class WalkReceiver: TransferReceiver, @unchecked Sendable {
    let walk: VerifiedCARWalk

    init(walk: VerifiedCARWalk) {
        self.walk = walk
    }

    func begin(_ head: TransferHead) throws {
        try VerifiedCARWalk.checkContentType(head.contentType)
    }

    func receive(_ chunk: UnsafeRawBufferPointer) throws {
        try walk.consume(chunk)
    }
}

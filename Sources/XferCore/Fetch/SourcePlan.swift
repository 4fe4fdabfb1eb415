import IPFSData

/// The sources that can serve one mapped URL, in the order the race uses them.
struct SourcePlan: Sendable {
    /// IPFS sources: the configured gateways and the mount.
    let ipfs: [any Source]
    /// HTTP mirrors: the requested URL, then the mirrorlist's other servers.
    let mirrors: [any Source]

    /// The plan for one file; `root` is the (resolved) mirror root, nil to use no IPFS source;
    /// `fileCID` is the file's own CID from the root's index, fetched directly when known.
    init(mapping: URLMapper.Mapping, root: MirrorRoot?, fileCID: CID? = nil, config: XferConfig, userAgent: String?) {
        var ipfs: [any Source] = []
        if let root, let file = mapping.file {
            let relative = config.layout.expand(repo: file.repo, arch: file.arch) + [file.fileName]
            // With the index, /ipfs/<file cid>; otherwise the path below the root.
            let target = fileCID.map { (root: MirrorRoot(cid: $0), relative: [String]()) }
                ?? (root: root, relative: relative)
            let path = target.root.path(appending: target.relative.map(PercentEncoding.encodeSegment))
            for gateway in config.gateways {
                ipfs.append(HTTPSource(kind: .gateway, url: gateway + path, base: gateway, userAgent: userAgent))
            }
            // Untrusted gateways need a root we can verify from: an /ipfs CID, not an /ipns name
            // the gateway would resolve for us (one that could not be resolved here).
            if target.root.namespace == .ipfs, let cid = try? CID(target.root.name) {
                for gateway in config.trustlessGateways {
                    ipfs.append(TrustlessGatewaySource(
                        base: gateway, root: cid, segments: target.root.segments + target.relative, userAgent: userAgent))
                }
            }
            if let mountPoint = config.mountPoint {
                ipfs.append(MountSource(
                    path: Self.mountPath(root: target.root, mountPoint: mountPoint, relative: target.relative),
                    mountPoint: mountPoint))
            }
        }
        self.ipfs = ipfs
        self.mirrors = mapping.mirrorURLs.map { url in
            HTTPSource(kind: .mirror, url: url, base: HTTPSource.origin(of: url), userAgent: userAgent)
        }
    }

    /// Where a file sits under kubo's mounts: `/ipfs/<cid>/…`, or `/ipns/<name>/…` beside it.
    static func mountPath(root: MirrorRoot, mountPoint: String, relative: [String]) -> String {
        let base: String
        switch root.namespace {
        case .ipfs: base = mountPoint
        case .ipns: base = (FileSystem.directoryName(mountPoint) == "/" ? "" : FileSystem.directoryName(mountPoint)) + "/ipns"
        }
        return ([base, root.name] + root.segments + relative).joined(separator: "/")
    }

    /// Splits the sources into those raced at once and the chain tried after the hedge: sources
    /// that are down go to the end of the chain, as a last resort.
    func ordered(health: SourceHealth, now: Int64) -> (ipfs: [any Source], chain: [any Source]) {
        let isDown = { (source: any Source) in health.isDown(source.healthKey, now: now) }
        let chain = mirrors.filter { !isDown($0) } + mirrors.filter(isDown) + ipfs.filter(isDown)
        return (ipfs.filter { !isDown($0) }, chain)
    }
}

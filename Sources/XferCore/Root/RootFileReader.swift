import CurlTransfer
import IPFSData

/// Reads a small file at the mirror root (`lastupdate`, `ipfs-xfer-index`) through the IPFS
/// sources: the trusted gateways, the mount, or verified from a trustless gateway.
struct RootFileReader: Sendable {
    /// What the sources said.
    enum Outcome: Sendable, Equatable {
        case found([UInt8])
        /// A source answered that the root has no such file.
        case absent
        /// No source could say.
        case unreachable
    }

    let config: XferConfig
    let userAgent: String?
    /// How long a source may take to connect, and go without sending a byte.
    let timeout: Double
    /// The health keys of sources known to be down (StateDir), which are not asked.
    let down: Set<String>

    init(config: XferConfig, userAgent: String?, timeout: Double, down: Set<String> = []) {
        self.config = config
        self.userAgent = userAgent
        self.timeout = timeout
        self.down = down
    }

    /// Reads `name` below `root`, at most `limit` bytes; the first source that answers decides.
    func read(_ name: String, at root: MirrorRoot, limit: Int) async -> Outcome {
        var absent = false
        for gateway in config.gateways where !down.contains("gateway \(gateway)") {
            let request = TransferRequest(
                url: gateway + root.path(appending: [PercentEncoding.encodeSegment(name)]),
                connectTimeout: min(config.connectTimeout, timeout), stallTimeout: timeout, userAgent: userAgent)
            let receiver = MemoryReceiver(limit: limit)
            do {
                _ = try await CurlMulti.shared.perform(request, into: receiver)
                return .found(receiver.bytes)
            } catch TransferError.status(404) {
                absent = true
            } catch {
                continue
            }
        }
        if let mountPoint = config.mountPoint, !down.contains("mount \(mountPoint)") {
            let path = SourcePlan.mountPath(root: root, mountPoint: mountPoint, relative: [name])
            do {
                return .found(try await MountSource.readSmallFile(path: path, limit: limit, stallTimeout: timeout))
            } catch MountSource.MountError.notFound {
                absent = true
            } catch {}
        }
        if let cid = try? CID(root.name) {
            for gateway in config.trustlessGateways where !down.contains("trustless \(gateway)") {
                switch await readVerified(name, root: cid, segments: root.segments, gateway: gateway, limit: limit) {
                case .found(let bytes): return .found(bytes)
                case .absent: absent = true
                case .unreachable: continue
                }
            }
        }
        return absent ? .absent : .unreachable
    }

    private func readVerified(_ name: String, root: CID, segments: [String], gateway: String, limit: Int) async -> Outcome {
        let collected = MemoryReceiver(limit: limit)
        do {
            try await TrustlessGatewaySource.retrieve(
                base: gateway, root: root, segments: segments + [name], from: 0,
                timeouts: Timeouts(connect: min(config.connectTimeout, timeout), stall: timeout), userAgent: userAgent
            ) { bytes in
                try collected.receive(bytes)
            }
        } catch TransferError.status(404) {
            return .absent
        } catch VerifiedCARWalk.Failure.notFound {
            return .absent
        } catch {
            return .unreachable
        }
        return .found(collected.bytes)
    }
}

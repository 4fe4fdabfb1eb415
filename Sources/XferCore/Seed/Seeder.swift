import Glibc
import IPFSData

/// Puts cached packages into the local kubo node under the mirror's exact CIDs, so the LAN and
/// the swarm can fetch them from this machine.
///
/// For each queued file: the mirror's CID comes from the root's index, or from the node
/// (`resolve` of the path under the root). A file that came through the local gateway already
/// has its blocks in the node and is only pinned. Any other is imported here with the mirror's
/// import parameters (the index's, else `Import`), and only when that gives the mirror's CID
/// are its blocks sent (`dag/import` of a CAR) and pinned, under the name `ipfs-xfer <file>`;
/// then it is announced. A file whose CID does not match is reported and never pinned. When
/// the node does not answer, the rest of the queue waits for the next run.
public struct Seeder: Sendable {
    /// What a run did.
    public struct Report: Sendable, Equatable {
        public var seeded: [String] = []
        /// Files dropped from the queue, with the reason (a CID mismatch, a file gone).
        public var dropped: [String] = []
        /// Files left for a later run.
        public var pending = 0
    }

    /// Why one file was not seeded.
    enum Failure: Error, CustomStringConvertible {
        /// The node (or the root) could not be reached: stop, and keep the queue.
        case unavailable(String)
        /// This file cannot be seeded now (e.g. the node cannot find the mirror's CID for it yet):
        /// keep it queued, go on with the others.
        case deferred(String)
        /// This file cannot be seeded: drop it.
        case refused(String)

        var description: String {
            switch self {
            case .unavailable(let reason), .deferred(let reason), .refused(let reason): reason
            }
        }
    }

    /// How long a file may wait in the queue before it is given up.
    public static let maximumWait: Int64 = 7 * 86_400

    public let config: XferConfig
    public let state: StateDirectory
    public let userAgent: String?
    /// Where progress lines go (the worker's log).
    public let log: @Sendable (String) -> Void

    public init(config: XferConfig, state: StateDirectory, userAgent: String? = nil, log: @escaping @Sendable (String) -> Void) {
        self.config = config
        self.state = state
        self.userAgent = userAgent
        self.log = log
    }

    private var queue: SeedQueue { SeedQueue(state: state) }

    /// Works through the queue; only one run at a time (another one returns at once).
    public func run(now: Int64) async -> Report {
        var report = Report()
        let lockPath = state.path + "/seed-worker.lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        defer { if lock >= 0 { close(lock) } }
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            report.pending = queue.pending().count
            return report
        }
        StateDirectory.shareWithGroup(lock)
        guard let api = config.api else {
            log("no API (kubo RPC) is configured: nothing is seeded")
            report.pending = queue.pending().count
            return report
        }
        let rpc = KuboRPC(base: api, timeout: max(config.resolveTimeout, 30), authorization: config.apiAuthorization)
        work: for target in queue.pending() {
            do throws(Failure) {
                let cid = try await seed(target, rpc: rpc, now: now)
                let size = FileSystem.fileSize(target.cachePath) ?? 0
                try? queue.finish(target, seeded: SeedQueue.Seeded(
                    fileName: target.fileName, cid: cid.description, size: size, time: now, cachePath: target.cachePath))
                report.seeded.append(target.fileName)
                log("seeded \(target.fileName) as \(cid)")
            } catch {
                switch error {
                case .deferred(let reason) where now - target.queuedAt < Self.maximumWait:
                    log("seeding \(target.fileName) later: \(reason)")
                case .refused(let reason), .deferred(let reason):
                    try? queue.finish(target, seeded: nil)
                    report.dropped.append(target.fileName)
                    log("not seeding \(target.fileName): \(reason)")
                case .unavailable(let reason):
                    log("seeding stopped, the rest waits for the next run: \(reason)")
                    break work
                }
            }
        }
        report.pending = queue.pending().count
        return report
    }

    /// Unpins the seeded files that are no longer in pacman's cache; returns their names.
    public func prune() async -> [String] {
        guard let api = config.api else { return [] }
        let rpc = KuboRPC(base: api, timeout: max(config.resolveTimeout, 30), authorization: config.apiAuthorization)
        var pruned: [String] = []
        for file in queue.seeded() where FileSystem.fileSize(file.cachePath) == nil {
            do {
                try await rpc.unpin(file.cid)
            } catch .refused(let command, let message) where message.contains("not pinned") {
                _ = command  // already gone from the node: forget it too
            } catch {
                log("cannot unpin \(file.fileName): \(error)")
                continue
            }
            try? queue.forget(file.fileName)
            pruned.append(file.fileName)
            log("unpinned \(file.fileName) (\(file.cid)): no longer in the cache")
        }
        return pruned
    }

    private func seed(_ target: SeedTarget, rpc: KuboRPC, now: Int64) async throws(Failure) -> CID {
        guard FileSystem.fileSize(target.cachePath) != nil else { throw .refused("\(target.cachePath) is gone") }
        let (mirrorCID, parameters) = try await mirrorCID(for: target, rpc: rpc, now: now)
        if cameThroughGateway(target.fileName) {
            // Its blocks are in the node already: pinning is all it takes.
            if (try? await rpc.pin(mirrorCID.description, name: "ipfs-xfer \(target.fileName)")) != nil {
                await announce(mirrorCID, rpc: rpc)
                return mirrorCID
            }
        }
        let car = state.path + "/seed-\(getpid()).car"
        defer { FileSystem.remove(car) }
        let ours: CID
        do {
            let fd = open(target.cachePath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open \(target.cachePath)") }
            defer { close(fd) }
            let writer = try CARWriter(path: car, rootByteCount: mirrorCID.bytes.count)
            ours = try FileImporter(parameters: parameters, sink: writer).importFile(fd: fd, path: target.cachePath).cid
            guard ours == mirrorCID else {
                throw Failure.refused("its CID is \(ours), the mirror's is \(mirrorCID) (import: \(parameters))")
            }
            try writer.finish(root: ours)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .refused("cannot import \(target.cachePath): \(error)")
        }
        do {
            try await rpc.importCAR(path: car)
            try await rpc.pin(ours.description, name: "ipfs-xfer \(target.fileName)")
        } catch {
            throw .unavailable(error.description)
        }
        await announce(ours, rpc: rpc)
        return ours
    }

    /// The mirror's CID for the file and the parameters to import it with.
    private func mirrorCID(for target: SeedTarget, rpc: KuboRPC, now: Int64) async throws(Failure) -> (CID, ImportParameters) {
        guard let choice = await RootLookup(config: config, userAgent: userAgent, warn: log)
            .choose(state: state, now: now, waitForFresh: false),
              choice.root.namespace == .ipfs, let root = try? CID(choice.root.name) else {
            throw .unavailable("the mirror root is not configured or not resolved")
        }
        let relative = target.relativePath(layout: config.layout)
        let index = await MirrorIndexCache(state: state)
            .index(for: choice.root, reader: RootFileReader(config: config, userAgent: userAgent, timeout: config.resolveTimeout))
        let parameters = index?.importParameters ?? config.importParameters
        if let entry = index?.entry(for: relative) { return (entry.cid, parameters) }
        let path = MirrorRoot(cid: root).path(appending: choice.root.segments + relative.split(separator: "/").map(String.init))
        do {
            let text = try await rpc.resolveCID(path)
            guard let cid = try? CID(text) else { throw Failure.refused("the node resolved \(path) to '\(text)'") }
            return (cid, parameters)
        } catch let failure as Failure {
            throw failure
        } catch KuboRPC.Failure.refused(_, let message) {
            throw .deferred("the node cannot resolve \(path): \(message)")
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// Whether the last transfer of the file came whole from a trusted (local) gateway: a file
    /// shared with a mirror has only part of its blocks in the node.
    private func cameThroughGateway(_ fileName: String) -> Bool {
        let text = (try? FileSystem.readText(state.path + "/transfers.log")) ?? ""
        let entries = text.split(separator: "\n").reversed().lazy.compactMap(TransferLogEntry.init(line:))
            .filter { $0.file == fileName }
        guard let last = entries.first, last.kind == .gateway else { return false }
        // The lines of one transfer are written together, with one time, the main source's last.
        return entries.prefix { $0.time == last.time }.allSatisfy { $0.kind == .gateway || $0.bytes == 0 }
    }

    private func announce(_ cid: CID, rpc: KuboRPC) async {
        do {
            try await rpc.provide(cid.description)
        } catch {
            log("cannot announce \(cid): \(error)")
        }
    }
}

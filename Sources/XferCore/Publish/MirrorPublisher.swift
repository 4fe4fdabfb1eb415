import Glibc
import IPFSData

/// Publishes an rsync'd mirror to IPFS, incrementally: `ipfs-xfer publish MIRROR_DIR`.
///
/// The DAG is built here with kubo's exact CIDs (``IPFSData``), hashing only files whose size,
/// mtime or inode changed since the last run and rebuilding only directories whose entries
/// changed. Only the new blocks go to kubo, streamed while they are made as one CAR
/// (`dag/import`, see ``CARUpload``); then the pin moves from
/// the last root to the new one (`pin/update`, keeping `keep` generations), the IPNS name is
/// published and the root announced. A run is skipped when the mirror's `lastupdate` has not
/// changed. The state is saved once the blocks are in kubo and pinned, and the name is
/// published only after that, so a run killed anywhere is finished by the next one and the name
/// never points at a root kubo does not have. The root holds a virtual `ipfs-xfer-index`: each
/// file's CID, size and (from the repo databases) sha256, for clients.
public struct MirrorPublisher: Sendable {
    /// What to publish, and how.
    public struct Options: Sendable {
        public var mirror: String
        public var excludes: [String] = []
        /// The IPNS key (`self`: the node's own).
        public var key = "self"
        public var parameters = ImportParameters.unixfsV0_2015
        public var lifetime = "48h"
        public var ttl = "5m"
        /// How many roots stay pinned, the new one included.
        public var keep = 2
        public var dryRun = false
        public var force = false
        /// The state file (by default `StateDir/publish-<mirror>`).
        public var statePath: String

        public init(mirror: String, statePath: String) {
            self.mirror = mirror
            self.statePath = statePath
        }
    }

    /// What a run did.
    public struct Report: Sendable, Equatable {
        public var root: CID?
        public var name: String?
        /// True when `lastupdate` had not changed and nothing was done.
        public var skipped = false
        public var filesHashed = 0
        public var filesReused = 0
        public var directoriesBuilt = 0
        public var directoriesReused = 0
        public var bytesHashed: Int64 = 0
        public var bytesSent: Int64 = 0
        /// The whole run, and the part of it after the last block was sent: waiting for kubo to
        /// finish the import, move the pin and publish the name.
        public var seconds = 0.0
        public var kuboSeconds = 0.0
    }

    /// Why a run failed.
    public enum Failure: Error, CustomStringConvertible {
        case walk(MirrorTree.WalkError)
        case io(String)
        case kubo(KuboRPC.Failure)
        case noAPI

        public var description: String {
            switch self {
            case .walk(let error): "\(error)"
            case .io(let message): message
            case .kubo(let error): "\(error)"
            case .noAPI: "publishing needs kubo's RPC (API = http://127.0.0.1:5001 in the config)"
            }
        }
    }

    public let options: Options
    public let rpc: KuboRPC?
    public let log: @Sendable (String) -> Void

    public init(options: Options, rpc: KuboRPC?, log: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.rpc = rpc
        self.log = log
    }

    /// Runs one publish.
    public func run() async throws(Failure) -> Report {
        let start = Monotonic.nanoseconds()
        var report = Report()
        // The state's header decides whether there is anything to do; its file and directory
        // lines (most of it) are read while the mirror is walked.
        let stateBytes = (try? FileSystem.readBytes(options.statePath)) ?? []
        var state = PublishState(bytes: stateBytes, records: false)
        if state.parameters != options.parameters { state = PublishState() }  // another import: start over
        let lastUpdate = (try? FileSystem.readText(options.mirror + "/lastupdate")).flatMap {
            Int64($0.split(whereSeparator: \.isWhitespace).first ?? "")
        }
        if !options.force && !options.dryRun, let lastUpdate, lastUpdate == state.lastUpdate, let root = state.root {
            report.root = root
            if state.published == root {
                report.skipped = true
            } else {
                // An earlier run stopped before publishing.
                state = PublishState(bytes: stateBytes)
                let waiting = Monotonic.nanoseconds()
                report.name = try await announce(root)
                state.published = root
                try writingState(stage(state, records: state.records).commit)
                report.kuboSeconds = Monotonic.seconds(since: waiting)
            }
            report.seconds = Monotonic.seconds(since: start)
            return report
        }
        guard options.dryRun || rpc != nil else { throw .noAPI }
        if !options.dryRun { FileSystem.removeAbandonedStages(of: options.statePath) }  // from a run killed while saving

        // Blocks stream to kubo while they are made (one dag/import, nothing spooled). On a
        // republish the import starts at once: each top-level part is built as soon as it is
        // walked, and a file the walk finds changed since the last run's walk is hashed there and
        // then. A first publish walks the whole mirror before it asks kubo anything (a refused
        // mirror asks it nothing).
        let republish = state.parameters != nil
        var upload = republish ? try startUpload() : nil
        var next = PublishState()
        next.parameters = options.parameters
        next.walkStarted = WallClock.nanoseconds()
        let built: MirrorBuild.Built
        var hashes: FileHashes?
        do throws(Failure) {
            // The last run's files and directories, read while the mirror is walked. The header,
            // in `state`, is all that is needed after the build: the rest goes with this block,
            // while kubo still works.
            let remembered = RememberedLinks()
            let last = Task {
                let state = republish ? PublishState(bytes: stateBytes) : PublishState()
                remembered.provide(state.files)
                return MirrorBuild.LastRun(state: state, known: state.knownBlocks)
            }
            var watch: MirrorTree.ChangeWatch?
            if republish {
                let started = try startHashing(sink: upload?.writer)
                hashes = started
                if let since = state.walkStarted { watch = MirrorTree.ChangeWatch(since: since) { started.request($0.realPath) } }
            }
            // (The parts of a republish are walked on threads of their own: they may wait for the links.)
            let tree = MirrorTree(root: options.mirror, excludes: options.excludes,
                                  includeHidden: options.parameters.includeHidden, watch: watch,
                                  knownLinks: republish ? remembered.link(at:) : nil)
            var parts: [(name: String, source: MirrorBuild.Source)]
            do throws(MirrorTree.WalkError) {
                if republish {
                    parts = try tree.topLevel().map { name, entry in
                        switch entry {
                        case .file(let file): (name, .walked(.file(file)))
                        case .directory(let subtree): (name, .toWalk(subtree))
                        }
                    }
                } else {
                    parts = []
                    if case .directory(_, let entries) = try await tree.walk() { parts = entries.map { ($0.name, .walked($0.node)) } }
                }
            } catch {
                throw .walk(error)
            }
            // The mirror's own index, if it has one, is replaced by ours.
            parts.removeAll { $0.name == MirrorIndex.fileName }
            if upload == nil { upload = try startUpload() }
            let fileHashes: FileHashes
            if let started = hashes {
                fileHashes = started
            } else {
                fileHashes = try startHashing(sink: upload?.writer)
                hashes = fileHashes
            }
            built = try await MirrorBuild(parameters: options.parameters, tree: tree, hashes: fileHashes,
                                          sink: upload?.writer ?? DiscardingSink(), last: last).build(parts)
            hashes?.close()
        } catch {
            hashes?.close()
            if let kuboFailure = await upload?.abandon() { throw .kubo(kuboFailure) }
            throw error
        }
        let root = built.root
        let fileRecords = built.files
        next.directories = built.directories
        next.indexBlocks = built.indexBlocks
        (report.filesHashed, report.bytesHashed) = hashes?.hashed ?? (0, 0)
        report.filesReused = built.filesReused
        report.directoriesBuilt = built.directoriesBuilt
        report.directoriesReused = built.directoriesReused
        report.root = root.cid
        guard let upload, let rpc else {
            report.seconds = Monotonic.seconds(since: start)
            return report
        }

        // Blocks, pin, state; then the name. The state, as it is once the root is pinned and again
        // once the name points at it, is written (not yet in place) while kubo works.
        report.bytesSent = upload.writer.byteCount
        let waiting = Monotonic.nanoseconds()
        let generations = [root.cid] + state.generations.filter { $0 != root.cid }
        next.generations = Array(generations.prefix(max(options.keep, 1)))
        next.lastUpdate = lastUpdate
        next.root = root.cid
        next.published = state.published
        let pinned = next
        async let staged = Result { () throws(Failure) in try stageStates(pinned, files: fileRecords, publishing: root.cid) }
        do {
            try await upload.finish()
            if let previous = state.root, previous != root.cid, state.generations.contains(previous) {
                try await rpc.updatePin(from: previous.description, to: root.cid.description, unpin: options.keep <= 1)
            } else if state.root != root.cid {
                try await rpc.pin(root.cid.description, name: "ipfs-xfer mirror")
            }
        } catch {
            if case .success(let saves) = await staged { saves.pinned.discard(); saves.named.discard() }
            throw .kubo(error)
        }
        if options.keep > 1 {
            for old in generations.dropFirst(next.generations.count) { try? await rpc.unpin(old.description) }
        }
        let saves = try await staged.get()
        do {
            try writingState(saves.pinned.commit)
            report.name = try await announce(root.cid)
        } catch {
            saves.named.discard()
            throw error
        }
        try writingState(saves.named.commit)
        report.kuboSeconds = Monotonic.seconds(since: waiting)
        report.seconds = Monotonic.seconds(since: start)
        return report
    }

    /// The state file staged twice: as `state` with `files` in it, and as the same once `root` is
    /// published.
    private func stageStates(
        _ state: PublishState, files: [(path: String, record: PublishState.FileRecord)], publishing root: CID
    ) throws(Failure) -> (pinned: FileSystem.StagedFile, named: FileSystem.StagedFile) {
        let records = state.records(files: files)
        var named = state
        named.published = root
        let pinned = try stage(state, records: records)
        do {
            return (pinned, try stage(named, records: records, tag: ".named"))
        } catch {
            pinned.discard()
            throw error
        }
    }

    /// The state file staged as `state` with its file and directory lines `records`.
    private func stage(_ state: PublishState, records: [UInt8], tag: String = "") throws(Failure) -> FileSystem.StagedFile {
        try writingState { () throws(SystemError) in
            try FileSystem.stage(options.statePath, bytes: [state.encodedHeader(), records], tag: tag)
        }
    }

    /// The `dag/import` the new blocks go to (none for a dry run).
    private func startUpload() throws(Failure) -> CARUpload? {
        guard !options.dryRun, let rpc else { return nil }
        return try CARUpload(rpc: rpc)
    }

    /// Hashing threads, one per core, whose blocks go to `sink` (nowhere for a dry run).
    private func startHashing(sink: (any BlockSink)?) throws(Failure) -> FileHashes {
        do {
            return try FileHashes(parameters: options.parameters, sink: sink ?? DiscardingSink(),
                                  threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        } catch {
            throw .io("cannot start hashing: \(error)")
        }
    }

    /// Publishes `root` under the IPNS key and announces it; returns the name.
    private func announce(_ root: CID) async throws(Failure) -> String {
        guard let rpc else { throw .noAPI }
        let name: String
        do {
            name = try await rpc.publishName("/ipfs/\(root)", key: options.key, lifetime: options.lifetime, ttl: options.ttl)
        } catch {
            throw .kubo(error)
        }
        do {
            try await rpc.provide(root.description)
        } catch {
            log("cannot announce \(root): \(error)")
        }
        return name
    }

    /// Runs `write`, a write of the state file, reporting its failure as one.
    private func writingState<T>(_ write: () throws(SystemError) -> T) throws(Failure) -> T {
        do {
            return try write()
        } catch {
            throw .io("cannot write \(options.statePath): \(error)")
        }
    }
}

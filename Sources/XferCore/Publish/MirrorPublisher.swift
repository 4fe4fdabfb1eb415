import Crypto
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
        let stateText = (try? FileSystem.readText(options.statePath)) ?? ""
        var state = PublishState(text: stateText, records: false)
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
                state = PublishState(text: stateText)
                let waiting = Monotonic.nanoseconds()
                report.name = try await announce(root)
                state.published = root
                try writingState { () throws(SystemError) in
                    try FileSystem.writeAtomically(options.statePath, bytes: state.encoded(records: state.records))
                }
                report.kuboSeconds = Monotonic.seconds(since: waiting)
            }
            report.seconds = Monotonic.seconds(since: start)
            return report
        }
        guard options.dryRun || rpc != nil else { throw .noAPI }
        if !options.dryRun { FileSystem.removeAbandonedStages(of: options.statePath) }  // from a run killed while saving

        let reuse = state.parameters != nil
        // Blocks stream to kubo while they are made (one dag/import, nothing spooled). Files the
        // walk finds changed since the last run's walk are hashed at once, so on a republish the
        // import starts before the walk; a first publish asks kubo nothing until the mirror has
        // been walked (one refused asks it nothing).
        let eagerSince = reuse ? state.walkStarted : nil
        var upload = eagerSince == nil ? nil : try startUpload()
        var next = PublishState()
        next.parameters = options.parameters
        next.walkStarted = WallClock.nanoseconds()
        let root: ImportedNode
        let fileRecords: [(path: String, record: PublishState.FileRecord)]
        do throws(Failure) {
            // The last run's files and directories, read while the mirror is walked. The header,
            // in `state`, is all that is needed after the build: the rest goes with this block,
            // while kubo still works.
            async let fullState = reuse ? PublishState(text: stateText) : PublishState()
            var eager: EagerHasher?
            var watch: MirrorTree.ChangeWatch?
            if let since = eagerSince {
                let hasher = try Self.eagerHasher(parameters: options.parameters, sink: upload?.writer ?? DiscardingSink())
                eager = hasher
                watch = MirrorTree.ChangeWatch(since: since) { hasher.add($0.realPath) }
            }
            let walked: Result<MirrorTree.Node, MirrorTree.WalkError>
            do {
                walked = .success(try await MirrorTree(
                    root: options.mirror, excludes: options.excludes, includeHidden: options.parameters.includeHidden,
                    watch: watch).walk())
            } catch {
                walked = .failure(error)
            }
            // (Done before anything can fail: the hasher must not write to an abandoned upload.)
            let early = await eager?.finish() ?? [:]
            let last = await fullState
            // The mirror's own index, if it has one, is replaced by ours.
            guard case .directory(_, let walkedEntries) = try walked.mapError(Failure.walk).get() else {
                throw Failure.io("\(options.mirror) is not a directory")
            }
            let entries = walkedEntries.filter { $0.name != MirrorIndex.fileName }
            let files = MirrorTree.files(.directory(path: "", entries: entries))
            if upload == nil { upload = try startUpload() }
            (root, fileRecords) = try await buildDAG(
                entries, files: files, hashedEarly: early, sink: upload?.writer ?? DiscardingSink(), state: last,
                next: &next, report: &report)
        } catch {
            if let kuboFailure = await upload?.abandon() { throw .kubo(kuboFailure) }
            throw error
        }
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
        let pinned = try writingState { () throws(SystemError) in
            try FileSystem.stage(options.statePath, bytes: state.encoded(records: records))
        }
        do {
            return (pinned, try writingState { () throws(SystemError) in
                try FileSystem.stage(options.statePath, bytes: named.encoded(records: records), tag: ".named")
            })
        } catch {
            pinned.discard()
            throw error
        }
    }

    /// Builds the DAG of the mirror's top-level `entries` (whose `files` are in tree order) into
    /// `sink`: reuses the files and directories that did not change, hashes the rest (each real
    /// file once; those `hashedEarly`, by real path, during the walk are taken as they are) on
    /// every core, then the index and the directories. Returns the root and each file's record,
    /// in tree order.
    private func buildDAG(
        _ entries: [(name: String, node: MirrorTree.Node)], files: [MirrorTree.File], hashedEarly: [String: ImportedNode],
        sink: any BlockSink, state: PublishState, next: inout PublishState, report: inout Report
    ) async throws(Failure) -> (root: ImportedNode, files: [(path: String, record: PublishState.FileRecord)]) {
        // Files: reuse what did not change, hash the rest (each real file once) on every core.
        // Meanwhile the repo databases are read, for the index.
        let packages = Task { Self.packageRecords(files) }
        let reused = await Self.unchanged(files, state: state)
        var changed: [String: MirrorTree.File] = [:]
        for (index, file) in files.enumerated() where reused[index] == nil { changed[file.realPath] = file }
        let hashed = try await hash(changed.values.filter { hashedEarly[$0.realPath] == nil }, sink: sink)
            .merging(hashedEarly) { late, _ in late }
        report.filesReused = reused.count { $0 != nil }
        report.filesHashed = hashed.count
        report.bytesHashed = hashed.values.reduce(0) { $0 + Int64($1.fileSize) }
        // Each file's node and record, in the order of `files` (the tree's order).
        var nodes: [ImportedNode] = []
        var fileRecords: [(path: String, record: PublishState.FileRecord)] = []
        nodes.reserveCapacity(files.count)
        fileRecords.reserveCapacity(files.count)
        for (index, file) in files.enumerated() {
            let node = reused[index] ?? hashed[file.realPath]!
            nodes.append(node)
            fileRecords.append((file.path, .init(size: file.size, modified: file.modified, inode: file.inode, node: node)))
        }

        // The directories bottom-up, reusing those whose entries are the same, each top-level
        // directory on a core of its own and the index beside them; then the root. Of their
        // blocks, only those the last root lacks go to kubo.
        let known = state.knownBlocks
        let indexSink = KnownBlockFilter(passingTo: sink, known: known)
        let fileNodes = nodes
        do {
            var built = BuiltDirectories()
            let children = try await withThrowingTaskGroup(of: (Int, ImportedNode, BuiltDirectories).self) { group in
                var first = 0
                for (position, (_, child)) in entries.enumerated() {
                    let count = MirrorTree.fileCount(child)
                    let range = first..<first + count
                    first += count
                    group.addTask {
                        var cursor = fileNodes[range].makeIterator()
                        var built = BuiltDirectories()
                        let node = try build(child, files: &cursor, sink: sink, known: known, state: state, into: &built)
                        return (position, node, built)
                    }
                }
                // The index, last of the root's entries, once the databases are read (the
                // directories need not wait for them).
                group.addTask {
                    let records = await packages.value
                    return (entries.count, try importIndex(files: files, nodes: fileNodes, packages: records, sink: indexSink),
                            BuiltDirectories())
                }
                var nodes = [ImportedNode?](repeating: nil, count: entries.count + 1)
                for try await (position, node, part) in group {
                    nodes[position] = node
                    built.merge(part)
                }
                return zip(entries.map(\.name) + [MirrorIndex.fileName], nodes).map { (name: $0, node: $1!) }
            }
            next.indexBlocks = indexSink.blocks
            let root = try directory("", children: children, sink: sink, known: known, state: state, into: &built)
            next.directories = built.records
            report.directoriesBuilt = built.built
            report.directoriesReused = built.reused
            return (root, fileRecords)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .io("\(error)")
        }
    }

    /// The directories built or reused by a part of the run, by path.
    private struct BuiltDirectories: Sendable {
        var records: [String: PublishState.DirectoryRecord] = [:]
        var built = 0
        var reused = 0

        mutating func merge(_ other: BuiltDirectories) {
            records.merge(other.records) { mine, _ in mine }
            built += other.built
            reused += other.reused
        }
    }

    /// Each file's node from the last run when its size, mtime and inode are the same (nil when
    /// they are not), in the order of `files`; looked up on every core.
    private static func unchanged(_ files: [MirrorTree.File], state: PublishState) async -> [ImportedNode?] {
        let parts = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), files.count / 4096))
        let size = (files.count + parts - 1) / parts
        return await withTaskGroup(of: (Int, [ImportedNode?]).self) { group in
            for part in 0..<parts {
                group.addTask {
                    let range = min(part * size, files.count)..<min((part + 1) * size, files.count)
                    return (part, files[range].map { file in
                        guard let record = state.files[file.path], record.size == file.size,
                              record.modified == file.modified, record.inode == file.inode else { return nil }
                        return record.node
                    })
                }
            }
            var results = [[ImportedNode?]](repeating: [], count: parts)
            for await (part, nodes) in group { results[part] = nodes }
            return results.flatMap { $0 }
        }
    }

    /// The `dag/import` the new blocks go to (none for a dry run).
    private func startUpload() throws(Failure) -> CARUpload? {
        guard !options.dryRun, let rpc else { return nil }
        return try CARUpload(rpc: rpc)
    }

    /// A started ``EagerHasher`` whose blocks go to `sink`.
    private static func eagerHasher(parameters: ImportParameters, sink: any BlockSink) throws(Failure) -> EagerHasher {
        do {
            return try EagerHasher(parameters: parameters, sink: sink)
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

    /// Imports the files on every core; returns their nodes by real path.
    private func hash(_ files: [MirrorTree.File], sink: any BlockSink) async throws(Failure) -> [String: ImportedNode] {
        do {
            return try await TreeImporter(parameters: options.parameters, sink: sink).importFiles(files.map(\.realPath))
        } catch {
            throw .io("\(error)")
        }
    }

    /// The packages the mirror's repo databases list, by file name (the first database naming one wins).
    private static func packageRecords(_ files: [MirrorTree.File]) -> [String: PackageRecord] {
        var records: [String: PackageRecord] = [:]
        for file in files where file.path.hasSuffix(".db") {
            if let found = try? SyncDatabase(path: file.realPath).allRecords() { records.merge(found) { first, _ in first } }
        }
        return records
    }

    /// The index file's node: a line per file (`nodes` in the same order), with the sha256 the
    /// repo databases give (`packages`). Made in memory: it is a few bytes per file.
    private func importIndex(
        files: [MirrorTree.File], nodes: [ImportedNode], packages records: [String: PackageRecord], sink: any BlockSink
    ) throws(Failure) -> ImportedNode {
        var text = Array((MirrorIndex.header + "\n# import: \(options.parameters)\n").utf8)
        text.reserveCapacity(files.count * 120)
        for (file, node) in zip(files, nodes) {
            let sha256 = records[FileSystem.baseName(file.path)].flatMap { $0.size == file.size ? $0.sha256 : nil } ?? "-"
            text.append(contentsOf: file.path.utf8)
            text.append(UInt8(ascii: "\t"))
            text.append(contentsOf: node.cid.description.utf8)
            text.append(UInt8(ascii: "\t"))
            text.append(contentsOf: String(file.size).utf8)
            text.append(UInt8(ascii: "\t"))
            text.append(contentsOf: sha256.utf8)
            text.append(UInt8(ascii: "\n"))
        }
        do {
            return try FileImporter(parameters: options.parameters, sink: sink).importBytes(text)
        } catch {
            throw .io("cannot make the index: \(error)")
        }
    }

    /// The node of a file (the next of `files`, which are in tree order), or of a directory below
    /// the root (its subdirectories first).
    private func build(
        _ node: MirrorTree.Node, files: inout IndexingIterator<ArraySlice<ImportedNode>>, sink: any BlockSink,
        known: Set<CID>, state: PublishState, into built: inout BuiltDirectories
    ) throws -> ImportedNode {
        switch node {
        case .file:
            return files.next()!
        case .directory(let path, let entries):
            var children: [(name: String, node: ImportedNode)] = []
            children.reserveCapacity(entries.count)
            for (name, child) in entries {
                children.append((name, try build(child, files: &files, sink: sink, known: known, state: state, into: &built)))
            }
            return try directory(path, children: children, sink: sink, known: known, state: state, into: &built)
        }
    }

    /// A directory's node from its entries: the last run's when they are the same, else built
    /// (its blocks kubo lacks go to `sink`).
    private func directory(
        _ path: String, children: [(name: String, node: ImportedNode)], sink: any BlockSink, known: Set<CID>,
        state: PublishState, into built: inout BuiltDirectories
    ) throws -> ImportedNode {
        let digest = Self.digest(children)
        if let record = state.directories[path], record.digest == digest {
            built.reused += 1
            built.records[path] = record
            return record.node
        }
        let filter = KnownBlockFilter(passingTo: sink, known: known)
        let node = try DirectoryBuilder(parameters: options.parameters, sink: filter).build(children)
        built.built += 1
        built.records[path] = .init(digest: digest, node: node, shards: filter.blocks.filter { $0 != node.cid })
        return node
    }

    /// A directory's entries summed up: SHA-256 of each name (length first), size and CID, in
    /// tree order (which the walk keeps the same from run to run), in hex.
    private static func digest(_ children: [(name: String, node: ImportedNode)]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(children.count * 64)
        for (name, child) in children {
            Varint.append(UInt64(name.utf8.count), to: &bytes)
            bytes.append(contentsOf: name.utf8)
            Varint.append(child.tsize, to: &bytes)
            child.cid.append(to: &bytes)
        }
        return Hex.lowercase(SHA256.hash(data: bytes))
    }
}

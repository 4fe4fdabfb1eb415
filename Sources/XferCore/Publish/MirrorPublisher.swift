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
                state = PublishState(text: stateText)
                let waiting = Monotonic.nanoseconds()
                report.name = try await publish(root, state: &state)  // an earlier run stopped before publishing
                report.kuboSeconds = Monotonic.seconds(since: waiting)
            }
            report.seconds = Monotonic.seconds(since: start)
            return report
        }
        guard options.dryRun || rpc != nil else { throw .noAPI }

        let reuse = state.parameters != nil
        async let fullState = reuse ? PublishState(text: stateText) : PublishState()
        let walked: MirrorTree.Node
        do {
            walked = try await MirrorTree(root: options.mirror, excludes: options.excludes, includeHidden: options.parameters.includeHidden).walk()
        } catch {
            throw .walk(error)
        }
        state = await fullState
        // The mirror's own index, if it has one, is replaced by ours.
        guard case .directory(_, let walkedEntries) = walked else { throw .io("\(options.mirror) is not a directory") }
        let entries = walkedEntries.filter { $0.name != MirrorIndex.fileName }
        let files = MirrorTree.files(.directory(path: "", entries: entries))
        // Blocks stream to kubo while they are made (one dag/import, nothing spooled).
        let upload = try options.dryRun ? nil : rpc.map { rpc throws(Failure) in try CARUpload(rpc: rpc) }
        var next = PublishState()
        next.parameters = options.parameters
        let root: ImportedNode
        do {
            root = try await buildDAG(entries, files: files, sink: upload?.writer ?? DiscardingSink(), state: state, next: &next, report: &report)
        } catch {
            if let kuboFailure = await upload?.abandon() { throw .kubo(kuboFailure) }
            throw error
        }
        report.root = root.cid
        guard let upload, let rpc else {
            report.seconds = Monotonic.seconds(since: start)
            return report
        }

        // Blocks, pin, state; then the name. The state's file lines are made while kubo works.
        report.bytesSent = upload.writer.byteCount
        let waiting = Monotonic.nanoseconds()
        let built = next
        async let records = built.records(filesInOrder: files.map(\.path))
        do {
            try await upload.finish()
            if let previous = state.root, previous != root.cid, state.generations.contains(previous) {
                try await rpc.updatePin(from: previous.description, to: root.cid.description, unpin: options.keep <= 1)
            } else if state.root != root.cid {
                try await rpc.pin(root.cid.description, name: "ipfs-xfer mirror")
            }
        } catch {
            throw .kubo(error)
        }
        next.generations = [root.cid] + state.generations.filter { $0 != root.cid }
        while next.generations.count > max(options.keep, 1) {
            let old = next.generations.removeLast()
            if options.keep > 1 { try? await rpc.unpin(old.description) }
        }
        next.lastUpdate = lastUpdate
        next.root = root.cid
        next.published = state.published
        let lines = await records
        try save(next, records: lines)
        report.name = try await publish(root.cid, state: &next, records: lines)
        report.kuboSeconds = Monotonic.seconds(since: waiting)
        report.seconds = Monotonic.seconds(since: start)
        return report
    }

    /// Builds the DAG of the mirror's top-level `entries` (whose `files` are in tree order) into
    /// `sink`: reuses the files and directories that did not change, hashes the rest (each real
    /// file once) on every core, then the index and the directories.
    private func buildDAG(
        _ entries: [(name: String, node: MirrorTree.Node)], files: [MirrorTree.File], sink: any BlockSink,
        state: PublishState, next: inout PublishState, report: inout Report
    ) async throws(Failure) -> ImportedNode {
        // Files: reuse what did not change, hash the rest (each real file once) on every core.
        // Meanwhile the repo databases are read, for the index.
        async let packages = Self.packageRecords(files)
        var reused = [ImportedNode?](repeating: nil, count: files.count)
        var changed: [String: MirrorTree.File] = [:]
        for (index, file) in files.enumerated() {
            if let record = state.files[file.path], record.size == file.size, record.modified == file.modified,
               record.inode == file.inode {
                reused[index] = record.node
            } else {
                changed[file.realPath] = file
            }
        }
        let hashed = try await hash(Array(changed.values), sink: sink)
        report.filesReused = reused.count { $0 != nil }
        report.filesHashed = hashed.count
        report.bytesHashed = changed.values.reduce(0) { $0 + $1.size }
        // Each file's node, in the order of `files` (the tree's order).
        var nodes: [ImportedNode] = []
        nodes.reserveCapacity(files.count)
        next.files.reserveCapacity(files.count)
        for (index, file) in files.enumerated() {
            let node = reused[index] ?? hashed[file.realPath]!
            nodes.append(node)
            next.files[file.path] = .init(size: file.size, modified: file.modified, inode: file.inode, node: node)
        }

        // The directories bottom-up, reusing those whose entries are the same, while the index is
        // made on another core; then the root. Of their blocks, only those the last root lacks go
        // to kubo.
        let known = state.knownBlocks
        let indexSink = KnownBlockFilter(passingTo: sink, known: known)
        let records = await packages, fileNodes = nodes
        async let index = importIndex(files: files, nodes: fileNodes, packages: records, sink: indexSink)
        do {
            var fileCursor = fileNodes.makeIterator()
            var children: [(name: String, node: ImportedNode)] = []
            for (name, child) in entries {
                children.append((name, try build(child, files: &fileCursor, sink: sink, known: known, state: state,
                                                 next: &next, report: &report)))
            }
            children.append((MirrorIndex.fileName, try await index))
            next.indexBlocks = indexSink.blocks
            return try directory("", children: children, sink: sink, known: known, state: state, next: &next, report: &report)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .io("\(error)")
        }
    }

    /// Publishes `root` under the IPNS key, announces it, and records it in the state (whose file
    /// and directory lines are `records`, when already made).
    private func publish(_ root: CID, state: inout PublishState, records: String? = nil) async throws(Failure) -> String? {
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
        state.published = root
        try save(state, records: records ?? state.records)
        return name
    }

    private func save(_ state: PublishState, records: String) throws(Failure) {
        do {
            try FileSystem.writeAtomically(options.statePath, state.text(records: records), mode: 0o644)
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
        _ node: MirrorTree.Node, files: inout IndexingIterator<[ImportedNode]>, sink: any BlockSink, known: Set<CID>,
        state: PublishState, next: inout PublishState, report: inout Report
    ) throws -> ImportedNode {
        switch node {
        case .file:
            return files.next()!
        case .directory(let path, let entries):
            var children: [(name: String, node: ImportedNode)] = []
            children.reserveCapacity(entries.count)
            for (name, child) in entries {
                children.append((name, try build(child, files: &files, sink: sink, known: known, state: state,
                                                 next: &next, report: &report)))
            }
            return try directory(path, children: children, sink: sink, known: known, state: state, next: &next,
                                 report: &report)
        }
    }

    /// A directory's node from its entries: the last run's when they are the same, else built
    /// (its blocks kubo lacks go to `sink`).
    private func directory(
        _ path: String, children: [(name: String, node: ImportedNode)], sink: any BlockSink, known: Set<CID>,
        state: PublishState, next: inout PublishState, report: inout Report
    ) throws -> ImportedNode {
        let digest = Self.digest(children)
        if let record = state.directories[path], record.digest == digest {
            report.directoriesReused += 1
            next.directories[path] = record
            return record.node
        }
        let filter = KnownBlockFilter(passingTo: sink, known: known)
        let built = try DirectoryBuilder(parameters: options.parameters, sink: filter).build(children)
        report.directoriesBuilt += 1
        next.directories[path] = .init(digest: digest, node: built, shards: filter.blocks.filter { $0 != built.cid })
        return built
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

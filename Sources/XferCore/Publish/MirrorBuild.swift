import Crypto
import IPFSData

/// Builds a mirror's DAG part by part: each top-level entry (`pool/`, a repo, `lastupdate`) is
/// walked if it is not yet, its unchanged files reused from the last run, its changed ones hashed
/// (``FileHashes``: each real file once, whichever part asks first), and its directories built,
/// on its own task, so the blocks of a part go to kubo while the next is still being walked.
/// The index is made beside them once every part's files are known, then the root.
struct MirrorBuild: Sendable {
    /// A top-level entry, walked or still to walk.
    enum Source: Sendable {
        case walked(MirrorTree.Node)
        case toWalk(MirrorTree.Subtree)
    }

    /// What the last run left that a build reuses: its files and directories, and the blocks of
    /// its directories and index (which kubo has).
    struct LastRun: Sendable {
        var state: PublishState
        var known: Set<CID>
    }

    /// The DAG, and what went into it.
    struct Built: Sendable {
        var root: ImportedNode
        /// Each file's record, in tree order.
        var files: [(path: String, record: PublishState.FileRecord)]
        var directories: [String: PublishState.DirectoryRecord]
        var indexBlocks: [CID]
        var filesReused = 0
        var directoriesBuilt = 0
        var directoriesReused = 0
    }

    let parameters: ImportParameters
    let tree: MirrorTree
    let hashes: FileHashes
    /// Where new blocks go (those the last run's `known` blocks lack, for directories and the index).
    let sink: any BlockSink
    let last: Task<LastRun, Never>

    /// Builds the DAG of the top-level `parts`, in name order.
    func build(_ parts: [(name: String, source: Source)]) async throws(MirrorPublisher.Failure) -> Built {
        let (found, foundFiles) = AsyncStream.makeStream(of: FoundFiles.self)
        var results = [Part?](repeating: nil, count: parts.count)
        var index: (node: ImportedNode, blocks: [CID])?
        do {
            try await withThrowingTaskGroup(of: Finished.self) { group in
                for (position, part) in parts.enumerated() {
                    group.addTask { .part(try await build(part.source, at: position, telling: foundFiles)) }
                }
                group.addTask {
                    let (node, blocks) = try await makeIndex(parts: parts.count, from: found)
                    return .index(node, blocks: blocks)
                }
                for try await finished in group {
                    switch finished {
                    case .part(let part): results[part.position] = part
                    case .index(let node, let blocks): index = (node, blocks)
                    }
                }
            }
        } catch let failure as MirrorPublisher.Failure {
            throw failure
        } catch {
            throw .io("\(error)")
        }
        let last = await self.last.value
        var built = BuiltDirectories()
        var children: [(name: String, node: ImportedNode)] = []
        var files: [(path: String, record: PublishState.FileRecord)] = []
        files.reserveCapacity(results.reduce(0) { $0 + $1!.files.count })
        var reused = 0
        for (part, (name, _)) in zip(results, parts) {
            children.append((name, part!.node))
            files.append(contentsOf: part!.files)
            built.merge(part!.directories)
            reused += part!.reused
        }
        children.append((MirrorIndex.fileName, index!.node))
        let root: ImportedNode
        do {
            root = try directory("", children: children, last: last, into: &built)
        } catch {
            throw .io("\(error)")
        }
        return Built(root: root, files: files, directories: built.records, indexBlocks: index!.blocks, filesReused: reused,
                     directoriesBuilt: built.built, directoriesReused: built.reused)
    }

    /// A part's files and their nodes, in tree order, for the index.
    private struct FoundFiles: Sendable {
        var position: Int
        var files: [MirrorTree.File]
        var nodes: [ImportedNode]
    }

    /// A part built.
    private struct Part: Sendable {
        var position: Int
        var node: ImportedNode
        var files: [(path: String, record: PublishState.FileRecord)]
        var directories: BuiltDirectories
        var reused: Int
    }

    private enum Finished: Sendable {
        case part(Part)
        case index(ImportedNode, blocks: [CID])
    }

    /// Builds one part: walks it if needed, reuses what did not change, waits for the nodes of
    /// the rest, tells the index its files, then builds its directories.
    private func build(
        _ source: Source, at position: Int, telling found: AsyncStream<FoundFiles>.Continuation
    ) async throws -> Part {
        let node: MirrorTree.Node
        switch source {
        case .walked(let walked):
            node = walked
        case .toWalk(let subtree):
            // On a thread of its own: the parts are walked side by side, each at once (the file
            // a link leads to can be found changed by either walk, and hashed then).
            do {
                node = try await DedicatedThread.run { try tree.walk(subtree) }
            } catch let error as MirrorTree.WalkError {
                throw MirrorPublisher.Failure.walk(error)
            }
        }
        let files = MirrorTree.files(node)
        let last = await self.last.value
        var nodes = files.map { file -> ImportedNode? in
            guard let record = last.state.files[file.path], record.size == file.size,
                  record.modified == file.modified, record.inode == file.inode else { return nil }
            return record.node
        }
        let reused = nodes.count { $0 != nil }
        if reused < files.count {
            // (A real file reached twice, `core.db` and the `core.db.tar.gz` it leads to, is hashed once.)
            let changed = zip(files, nodes).compactMap { file, node in node == nil ? file.realPath : nil }
            let hashed: [String: ImportedNode]
            do {
                hashed = try await hashes.nodes(changed)
            } catch let failure as FileHashes.Failure {
                throw MirrorPublisher.Failure.io(failure.description)
            }
            for (index, file) in files.enumerated() where nodes[index] == nil { nodes[index] = hashed[file.realPath]! }
        }
        let fileNodes = nodes.map { $0! }
        found.yield(FoundFiles(position: position, files: files, nodes: fileNodes))
        var records: [(path: String, record: PublishState.FileRecord)] = []
        records.reserveCapacity(files.count)
        for (file, node) in zip(files, fileNodes) {
            records.append((file.path, .init(size: file.size, modified: file.modified, inode: file.inode, node: node, link: file.link)))
        }
        var directories = BuiltDirectories()
        var cursor = fileNodes.makeIterator()
        let built = try build(node, files: &cursor, last: last, into: &directories)
        return Part(position: position, node: built, files: records, directories: directories, reused: reused)
    }

    /// The index file's node and blocks, once the `parts` have told their files: a line per
    /// file, with the sha256 the repo databases give. Each part's lines but their sha256 are
    /// written as soon as it tells its files, and its databases read beside them, so little is
    /// left once the last part is in. Made in memory: it is a few bytes per file.
    private func makeIndex(parts: Int, from found: AsyncStream<FoundFiles>) async throws -> (ImportedNode, blocks: [CID]) {
        var told = [FoundFiles?](repeating: nil, count: parts)
        var lines = [IndexLines?](repeating: nil, count: parts)
        var packages = [[String: PackageRecord]](repeating: [:], count: parts)
        try await withThrowingTaskGroup(of: IndexWork.self) { group in
            var count = 0
            var iterator = found.makeAsyncIterator()
            while count < parts {
                guard let part = await iterator.next() else { throw CancellationError() }  // a part failed
                told[part.position] = part
                count += 1
                group.addTask { .lines(part.position, IndexLines(part)) }
                if part.files.contains(where: { $0.path.hasSuffix(".db") }) {
                    group.addTask { .packages(part.position, Self.packageRecords(part.files)) }
                }
            }
            for try await work in group {
                switch work {
                case .lines(let position, let made): lines[position] = made
                case .packages(let position, let records): packages[position] = records
                }
            }
        }
        // The first database naming a package wins.
        let records = packages.reduce(into: [String: PackageRecord]()) { all, part in all.merge(part) { first, _ in first } }
        var text = Array((MirrorIndex.header + "\n# import: \(parameters)\n").utf8)
        text.reserveCapacity(lines.reduce(0) { $0 + $1!.bytes.count } + told.reduce(0) { $0 + $1!.files.count } * 80)
        for (part, made) in zip(told, lines) {
            var start = 0
            for (file, end) in zip(part!.files, made!.ends) {
                text.append(contentsOf: made!.bytes[start..<end])
                start = end
                let sha256 = records[FileSystem.baseName(file.path)].flatMap { $0.size == file.size ? $0.sha256 : nil } ?? "-"
                text.append(contentsOf: sha256.utf8)
                text.append(UInt8(ascii: "\n"))
            }
        }
        let filter = KnownBlockFilter(passingTo: sink, known: await self.last.value.known)
        do {
            return (try FileImporter(parameters: parameters, sink: filter).importBytes(text), filter.blocks)
        } catch {
            throw MirrorPublisher.Failure.io("cannot make the index: \(error)")
        }
    }

    private enum IndexWork: Sendable {
        case lines(Int, IndexLines)
        case packages(Int, [String: PackageRecord])
    }

    /// A part's index lines up to their sha256 field: path, CID and size, each followed by a tab.
    private struct IndexLines: Sendable {
        var bytes: [UInt8] = []
        /// Where each line ends.
        var ends: [Int] = []

        init(_ part: FoundFiles) {
            bytes.reserveCapacity(part.files.count * 160)  // (pages reserved, not used, cost nothing)
            ends.reserveCapacity(part.files.count)
            for (file, node) in zip(part.files, part.nodes) {
                bytes.append(contentsOf: file.path.utf8)
                bytes.append(UInt8(ascii: "\t"))
                bytes.append(contentsOf: node.cid.description.utf8)
                bytes.append(UInt8(ascii: "\t"))
                bytes.append(contentsOf: String(file.size).utf8)
                bytes.append(UInt8(ascii: "\t"))
                ends.append(bytes.count)
            }
        }
    }

    /// The packages the mirror's repo databases list, by file name (the first database naming one wins).
    private static func packageRecords(_ files: some Sequence<MirrorTree.File>) -> [String: PackageRecord] {
        var records: [String: PackageRecord] = [:]
        for file in files where file.path.hasSuffix(".db") {
            if let found = try? SyncDatabase(path: file.realPath).allRecords() { records.merge(found) { first, _ in first } }
        }
        return records
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

    /// The node of a file (the next of `files`, which are in tree order), or of a directory (its
    /// subdirectories first).
    private func build(
        _ node: MirrorTree.Node, files: inout IndexingIterator<[ImportedNode]>, last: LastRun,
        into built: inout BuiltDirectories
    ) throws -> ImportedNode {
        switch node {
        case .file:
            return files.next()!
        case .directory(let path, let entries):
            var children: [(name: String, node: ImportedNode)] = []
            children.reserveCapacity(entries.count)
            for (name, child) in entries {
                children.append((name, try build(child, files: &files, last: last, into: &built)))
            }
            return try directory(path, children: children, last: last, into: &built)
        }
    }

    /// A directory's node from its entries: the last run's when they are the same, else built
    /// (its blocks kubo lacks go to `sink`).
    private func directory(
        _ path: String, children: [(name: String, node: ImportedNode)], last: LastRun, into built: inout BuiltDirectories
    ) throws -> ImportedNode {
        let digest = Self.digest(children)
        if let record = last.state.directories[path], record.digest == digest {
            built.reused += 1
            built.records[path] = record
            return record.node
        }
        let filter = KnownBlockFilter(passingTo: sink, known: last.known)
        let node = try DirectoryBuilder(parameters: parameters, sink: filter).build(children)
        built.built += 1
        built.records[path] = .init(digest: digest, node: node, shards: filter.blocks.filter { $0 != node.cid })
        return node
    }

    /// A directory's entries summed up: SHA-256 of each name (length first), size and CID, in
    /// tree order (which the walk keeps the same from run to run), in hex.
    private static func digest(_ children: [(name: String, node: ImportedNode)]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(children.count * 160)
        for (name, child) in children {
            Varint.append(UInt64(name.utf8.count), to: &bytes)
            bytes.append(contentsOf: name.utf8)
            Varint.append(child.tsize, to: &bytes)
            child.cid.append(to: &bytes)
        }
        return Hex.lowercase(SHA256.hash(data: bytes))
    }
}

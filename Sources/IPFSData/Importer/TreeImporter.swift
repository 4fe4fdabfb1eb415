import Glibc
import Synchronization

/// Imports a file or a directory tree the way `ipfs add -r` does: hidden names skipped unless
/// asked, symlinks kept as symlink nodes, empty directories included. Files are imported on
/// every core; directories are built bottom-up once their children are done.
public struct TreeImporter: Sendable {
    /// Why a path could not be imported.
    public enum ImportError: Error, CustomStringConvertible {
        case cannotRead(String, Int32)
        case unsupportedType(String)

        public var description: String {
            switch self {
            case .cannotRead(let path, let code): "\(path): \(String(cString: strerror(code)))"
            case .unsupportedType(let path): "\(path): not a file, directory or symlink"
            }
        }
    }

    public let parameters: ImportParameters
    public let sink: any BlockSink
    /// How many files are imported at once.
    public let concurrency: Int

    public init(parameters: ImportParameters, sink: any BlockSink = DiscardingSink(), concurrency: Int? = nil) {
        self.parameters = parameters
        self.sink = sink
        self.concurrency = max(1, concurrency ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// A path in the tree, as found by the walk.
    private indirect enum Entry {
        case file(String)
        case symlink(String, target: String)
        case directory(String, children: [(name: String, entry: Entry)])
    }

    /// Imports `path` (`-` reads a file from standard input).
    public func importPath(_ path: String) async throws -> ImportedNode {
        if path == "-" { return try FileImporter(parameters: parameters, sink: sink).importFile(fd: 0, path: "stdin") }
        let tree = try walk(path)
        var files: [String] = []
        collectFiles(tree, into: &files)
        let imported = try await importFiles(files)
        return try build(tree, files: imported)
    }

    private func walk(_ path: String) throws -> Entry {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw ImportError.cannotRead(path, errno) }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return .file(path)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(path, &buffer, buffer.count - 1)
            guard length >= 0 else { throw ImportError.cannotRead(path, errno) }
            return .symlink(path, target: String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case S_IFDIR:
            guard let directory = opendir(path) else { throw ImportError.cannotRead(path, errno) }
            defer { closedir(directory) }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name == "." || name == ".." { continue }
                if name.hasPrefix(".") && !parameters.includeHidden { continue }
                names.append(name)
            }
            return .directory(path, children: try names.map { ($0, try walk(path + "/" + $0)) })
        default:
            throw ImportError.unsupportedType(path)
        }
    }

    private func collectFiles(_ entry: Entry, into files: inout [String]) {
        switch entry {
        case .file(let path): files.append(path)
        case .symlink: break
        case .directory(_, let children): for child in children { collectFiles(child.entry, into: &files) }
        }
    }

    /// Imports files, `concurrency` at a time; returns their nodes by path.
    public func importFiles(_ paths: [String]) async throws -> [String: ImportedNode] {
        let importer = FileImporter(parameters: parameters, sink: sink)
        let next = WorkCounter()
        return try await withThrowingTaskGroup(of: [(String, ImportedNode)].self) { group in
            for _ in 0..<min(concurrency, max(paths.count, 1)) {
                group.addTask {
                    var done: [(String, ImportedNode)] = []
                    while true {
                        let index = next.take()
                        guard index < paths.count else { return done }
                        let fd = open(paths[index], O_RDONLY | O_CLOEXEC)
                        guard fd >= 0 else { throw ImportError.cannotRead(paths[index], errno) }
                        defer { close(fd) }
                        done.append((paths[index], try importer.importFile(fd: fd, path: paths[index])))
                    }
                }
            }
            var result: [String: ImportedNode] = [:]
            for try await batch in group {
                for (path, node) in batch { result[path] = node }
            }
            return result
        }
    }

    private func build(_ entry: Entry, files: [String: ImportedNode]) throws -> ImportedNode {
        switch entry {
        case .file(let path):
            return files[path]!
        case .symlink(_, let target):
            let data = UnixFSData(kind: .symlink, data: Array(target.utf8))
            let block = PBNode(links: [], data: data.encoded()).encoded()
            let cid = CID.hashing(block, codec: .dagPB, version: parameters.cidVersion)
            try sink.put(cid, block)
            return ImportedNode(cid: cid, tsize: UInt64(block.count), fileSize: 0)
        case .directory(_, let children):
            let built = try children.map { (name: $0.name, node: try build($0.entry, files: files)) }
            return try DirectoryBuilder(parameters: parameters, sink: sink).build(built)
        }
    }
}

/// Hands out work item indices to concurrent workers.
private final class WorkCounter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int {
        value.add(1, ordering: .relaxed).oldValue
    }
}

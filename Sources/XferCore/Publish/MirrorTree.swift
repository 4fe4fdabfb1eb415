import Glibc

/// A mirror directory as it is published: symlinks that stay inside the mirror are followed
/// (Arch's `$repo/os/$arch/<file>` point into `pool/`, and a gateway would serve them as
/// symlinks, not files), excluded paths are left out, and a symlink that leaves the mirror is
/// an error.
public struct MirrorTree: Sendable {
    /// Why the mirror cannot be walked.
    public enum WalkError: Error, CustomStringConvertible, Equatable {
        case cannotRead(String, String)
        case escapes(String, target: String)
        case tooDeep(String)
        case unsupported(String)

        public var description: String {
            switch self {
            case .cannotRead(let path, let reason): "cannot read \(path): \(reason)"
            case .escapes(let path, let target): "\(path) is a symlink out of the mirror (to \(target)); refusing to publish it"
            case .tooDeep(let path): "\(path): symlinks nest too deep (a loop?)"
            case .unsupported(let path): "\(path) is not a file, directory or symlink"
            }
        }
    }

    /// One file, as found.
    public struct File: Sendable, Equatable {
        /// Its path in the published tree.
        public var path: String
        /// The file it really is (symlinks resolved).
        public var realPath: String
        public var size: Int64
        public var modified: Int64
        public var inode: UInt64
        /// The symlink it was found through, when that leads straight to a file.
        public var link: Link? = nil
    }

    /// A symlink as a walk found it: its own inode and ctime, and its target as written. A link
    /// with the inode and ctime of one the last walk found is that link, unchanged, so the walk
    /// need not read its target again: on a mirror, reading tens of thousands of links costs a
    /// disk read each once they have left the cache.
    public struct Link: Sendable, Equatable {
        public var inode: UInt64
        /// Its ctime, in nanoseconds since the epoch.
        public var changed: Int64
        public var target: String

        public init(inode: UInt64, changed: Int64, target: String) {
            self.inode = inode
            self.changed = changed
            self.target = target
        }
    }

    /// A directory: its entries by name.
    public indirect enum Node: Sendable {
        case file(File)
        case directory(path: String, entries: [(name: String, node: Node)])
    }

    /// Files whose inode changed since a moment, told as the walk finds them (a file a symlink
    /// leads to, once per link).
    public struct ChangeWatch: Sendable {
        /// Nanoseconds since the epoch: a file whose ctime is not earlier is told.
        public var since: Int64
        public var found: @Sendable (File) -> Void

        public init(since: Int64, found: @escaping @Sendable (File) -> Void) {
            self.since = since
            self.found = found
        }
    }

    public let root: String
    /// `dir/` leaves out a directory at that path; anything else is a glob on the path.
    public let excludes: [String]
    public let includeHidden: Bool
    public let watch: ChangeWatch?
    /// The links the last walk found, by path (it may block until they are known); not asked at
    /// the top level.
    public let knownLinks: (@Sendable (String) -> Link?)?

    public init(root: String, excludes: [String], includeHidden: Bool = false, watch: ChangeWatch? = nil,
                knownLinks: (@Sendable (String) -> Link?)? = nil) {
        self.root = root
        self.excludes = excludes
        self.includeHidden = includeHidden
        self.watch = watch
        self.knownLinks = knownLinks
    }

    /// A directory at the mirror's top level, still to walk (``walk(_:)``).
    public struct Subtree: Sendable {
        /// Its path in the tree (its name).
        public let path: String
        fileprivate let real: String
        fileprivate let mirror: String
    }

    /// An entry at the mirror's top level.
    public enum TopEntry: Sendable {
        case file(File)
        case directory(Subtree)
    }

    /// The mirror's top level in name order, symlinks resolved, excluded paths left out; its
    /// directories are walked apart (``walk(_:)``), so a publish can work on each as it is done.
    public func topLevel() throws(WalkError) -> [(name: String, entry: TopEntry)] {
        guard let real = Self.realPath(root) else { throw .cannotRead(root, String(cString: strerror(errno))) }
        var resolver = LinkResolver()
        defer { resolver.close() }
        return try listing(real: real, path: "", mirror: real, resolver: &resolver, knownLinks: nil).map { entry in
            switch entry.kind {
            case .file(let file): (entry.name, .file(file))
            case .directory(let target, let path): (entry.name, .directory(Subtree(path: path, real: target, mirror: real)))
            }
        }
    }

    /// Walks a top-level directory.
    public func walk(_ subtree: Subtree) throws(WalkError) -> Node {
        var resolver = LinkResolver()
        defer { resolver.close() }
        return try directory(real: subtree.real, path: subtree.path, depth: 1, mirror: subtree.mirror, resolver: &resolver)
    }

    /// Walks the whole mirror: the top-level directories at once, on every core.
    public func walk() async throws(WalkError) -> Node {
        let top = try topLevel()
        let walked = await withTaskGroup(of: (Int, Result<Node, WalkError>).self) { group in
            for (index, entry) in top.enumerated() {
                guard case .directory(let subtree) = entry.entry else { continue }
                group.addTask { (index, Result { () throws(WalkError) in try walk(subtree) }) }
            }
            var results: [Int: Result<Node, WalkError>] = [:]
            for await (index, result) in group { results[index] = result }
            return results
        }
        var entries: [(name: String, node: Node)] = []
        for (index, (name, entry)) in top.enumerated() {
            switch entry {
            case .file(let file): entries.append((name, .file(file)))
            case .directory: entries.append((name, try walked[index]!.get()))
            }
        }
        return .directory(path: "", entries: entries)
    }

    /// Every file in the tree, in path order.
    public static func files(_ node: Node) -> [File] {
        var files: [File] = []
        files.reserveCapacity(fileCount(node))
        collect(node, into: &files)
        return files
    }

    private static func collect(_ node: Node, into files: inout [File]) {
        switch node {
        case .file(let file): files.append(file)
        case .directory(_, let entries): for entry in entries { collect(entry.node, into: &files) }
        }
    }

    /// How many files the tree has.
    public static func fileCount(_ node: Node) -> Int {
        switch node {
        case .file: 1
        case .directory(_, let entries): entries.reduce(0) { $0 + fileCount($1.node) }
        }
    }

    func isExcluded(_ path: String) -> Bool {
        excludes.contains { pattern in
            if pattern.hasSuffix("/") {
                let directory = String(pattern.dropLast())
                return path == directory || path.hasPrefix(directory + "/")
            }
            return fnmatch(pattern, path, 0) == 0
        }
    }

    /// A directory's entry as listed: a file, or a directory still to walk.
    private struct Entry {
        enum Kind {
            case file(File)
            /// Its real path and its path in the tree.
            case directory(String, String)
        }

        var name: String
        var kind: Kind
    }

    private func directory(
        real: String, path: String, depth: Int, mirror: String, resolver: inout LinkResolver
    ) throws(WalkError) -> Node {
        guard depth < 40 else { throw .tooDeep(path) }
        var entries: [(name: String, node: Node)] = []
        for entry in try listing(real: real, path: path, mirror: mirror, resolver: &resolver, knownLinks: knownLinks) {
            switch entry.kind {
            case .file(let file):
                entries.append((entry.name, .file(file)))
            case .directory(let target, let childPath):
                entries.append((entry.name, try directory(real: target, path: childPath, depth: depth + 1, mirror: mirror,
                                                          resolver: &resolver)))
            }
        }
        return .directory(path: path, entries: entries)
    }

    /// A directory's entries in name order, symlinks resolved, excluded paths left out.
    private func listing(
        real: String, path: String, mirror: String, resolver: inout LinkResolver, knownLinks: ((String) -> Link?)?
    ) throws(WalkError) -> [Entry] {
        // Entries are looked at relative to the directory's descriptor: no path walk per entry.
        let fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, let handle = fdopendir(fd) else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { Glibc.close(fd) }
            throw .cannotRead(real, reason)
        }
        defer { closedir(handle) }
        // The entry type readdir gives spares a stat of each symlink and directory.
        var names: [(name: String, type: UInt8)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." || (name.hasPrefix(".") && !includeHidden) { continue }
            names.append((name, entry.pointee.d_type))
        }
        // Each entry stated first, links resolved after: resolving may wait for the last walk's
        // links (``knownLinks``), and the files found meanwhile are told to the watch.
        var slots: [Entry?] = []
        var links: [(slot: Int, name: String, path: String, info: stat)] = []
        for (name, type) in names.sorted(by: { $0.name < $1.name }) {
            let childPath = path.isEmpty ? name : path + "/" + name
            if isExcluded(childPath) { continue }
            if Int(type) == DT_DIR {
                slots.append(Entry(name: name, kind: .directory(real + "/" + name, childPath)))
                continue
            }
            var info = stat()
            if fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
                throw .cannotRead(real + "/" + name, String(cString: strerror(errno)))
            }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                links.append((slots.count, name, childPath, info))
                slots.append(nil)
            } else {
                slots.append(try entry(name, path: childPath, realPath: real + "/" + name, info: info, link: nil))
            }
        }
        for (slot, name, childPath, own) in links {
            let (inode, changed) = (UInt64(own.st_ino), WallClock.nanoseconds(own.st_ctim))
            let known = knownLinks?(childPath).flatMap { $0.inode == inode && $0.changed == changed ? $0 : nil }
            guard let resolved = resolver.resolve(name, at: fd, in: real, target: known?.target) else {
                throw .cannotRead(real + "/" + name, "dangling symlink")
            }
            guard resolved.path == mirror || resolved.path.hasPrefix(mirror + "/") else {
                throw .escapes(childPath, target: resolved.path)
            }
            slots[slot] = try entry(name, path: childPath, realPath: resolved.path, info: resolved.info,
                                    link: resolved.target.map { Link(inode: inode, changed: changed, target: $0) })
        }
        return slots.map { $0! }
    }

    /// The entry for `name` (at `path` in the tree) whose real path is `realPath` and `info` its
    /// stat; a file is told to the watch.
    private func entry(_ name: String, path: String, realPath: String, info: stat, link: Link?) throws(WalkError) -> Entry {
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            return Entry(name: name, kind: .directory(realPath, path))
        case S_IFREG:
            let file = File(path: path, realPath: realPath, size: Int64(info.st_size),
                            modified: Int64(info.st_mtim.tv_sec), inode: UInt64(info.st_ino), link: link)
            if let watch, WallClock.nanoseconds(info.st_ctim) >= watch.since { watch.found(file) }
            return Entry(name: name, kind: .file(file))
        default:
            throw .unsupported(path)
        }
    }

    /// Resolves symlinks to real paths, fast for the common case: a mirror has tens of thousands
    /// of links (`$repo/os/$arch/<file>` into `pool/`) but only a few directories they point
    /// into. A link whose target names a plain (non-link) entry is resolved from the real path
    /// of the target's directory, which is looked up once; anything else goes through realpath.
    struct LinkResolver {
        /// Target directories as written (relative to a link) → their real path and an open descriptor.
        private var directories: [String: (real: String, fd: Int32)] = [:]
        /// Where readlinkat puts a link's target (one buffer for every link).
        private var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)

        /// The real path of the symlink `name` in the real directory `directory` (open as
        /// `directoryFD`), what it is (`stat` of it), and the link's target as written when it
        /// leads straight to a plain entry (nil when realpath had to follow it). A `target`
        /// known to be the link's is not read again.
        mutating func resolve(
            _ name: String, at directoryFD: Int32, in directory: String, target remembered: String?
        ) -> (path: String, info: stat, target: String?)? {
            let link = directory + "/" + name
            let target: String
            if let remembered {
                target = remembered
            } else {
                let count = readlinkat(directoryFD, name, &buffer, buffer.count - 1)
                guard count > 0 else { return Self.followed(link) }
                target = buffer.withUnsafeBufferPointer { characters in
                    String(decoding: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(characters)[0..<count]), as: UTF8.self)
                }
            }
            let absolute = target.hasPrefix("/") ? target : directory + "/" + target
            let targetName = FileSystem.baseName(absolute)
            guard targetName != "." && targetName != ".." && !targetName.isEmpty else { return Self.followed(link) }
            let parent = FileSystem.directoryName(absolute)
            let known: (real: String, fd: Int32)
            if let found = directories[parent] {
                known = found
            } else if directories.count >= 256 {
                return Self.followed(link)  // links into many directories: no descriptor for each
            } else {
                guard let real = MirrorTree.realPath(parent) else { return nil }
                let fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { return nil }
                known = (real, fd)
                directories[parent] = known
            }
            var info = stat()
            guard fstatat(known.fd, targetName, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
            // A link to a link: let realpath follow the chain (and catch loops).
            if (info.st_mode & S_IFMT) == S_IFLNK { return Self.followed(link) }
            return (known.real == "/" ? "/" + targetName : known.real + "/" + targetName, info, target)
        }

        /// Closes the target directories' descriptors.
        mutating func close() {
            for entry in directories.values { Glibc.close(entry.fd) }
            directories = [:]
        }

        /// The slow way: realpath, then stat of the result.
        private static func followed(_ link: String) -> (path: String, info: stat, target: String?)? {
            guard let path = MirrorTree.realPath(link) else { return nil }
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            return (path, info, nil)
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

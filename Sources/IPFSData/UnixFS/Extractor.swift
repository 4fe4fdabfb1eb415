import Glibc

/// Writes a UnixFS file or directory tree to disk from verified blocks, all or nothing: the
/// result appears at the destination only when every block was present and right.
public struct Extractor {
    /// Why extraction failed (besides block and structure errors from the reader).
    public struct WriteError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let reader: UnixFSReader

    public init(reader: UnixFSReader) {
        self.reader = reader
    }

    /// Extracts `cid` to `destination` (which must not exist yet); symlinks are reported, not made.
    public func extract(_ cid: CID, to destination: String, warn: (String) -> Void) throws {
        let temporary = destination + ".ipfs-xfer-\(getpid())"
        do {
            try write(cid, to: temporary, warn: warn)
            guard rename(temporary, destination) == 0 else {
                throw WriteError(message: "cannot create \(destination): \(String(cString: strerror(errno)))")
            }
        } catch {
            remove(temporary)
            throw error
        }
    }

    private func write(_ cid: CID, to path: String, warn: (String) -> Void) throws {
        let (kind, target) = try reader.kind(cid)
        switch kind {
        case .file, .raw:
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw WriteError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try reader.readFile(cid) { bytes in
                var written = 0
                while written < bytes.count {
                    let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw WriteError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
                    written += count
                }
            }
        case .directory:
            guard mkdir(path, 0o755) == 0 else { throw WriteError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
            for entry in try reader.entries(cid) {
                guard entry.name != "." && entry.name != ".." && !entry.name.contains("/") && !entry.name.isEmpty else {
                    throw WriteError(message: "refusing entry name '\(entry.name)' in \(cid)")
                }
                try write(entry.cid, to: path + "/" + entry.name, warn: warn)
            }
        case .symlink:
            warn("\(path): symlink to \(target ?? "") not created (symlinks are never followed or made)")
        default:
            throw WriteError(message: "\(path): unsupported UnixFS node")
        }
    }

    /// Removes a file or a directory tree.
    private func remove(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR, let directory = opendir(path) {
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

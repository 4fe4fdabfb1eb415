import Glibc

/// An operating-system call that failed, with the path and errno text.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    /// What was being done, e.g. `open /var/lib/ipfs-xfer/sources`.
    public var operation: String
    /// The errno value.
    public var code: Int32

    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(code)))"
    }
}

/// The few file operations the tool needs, as thin POSIX calls (no Foundation on the hot path).
public enum FileSystem {
    /// Reads a whole file as UTF-8 text (invalid sequences are repaired).
    public static func readText(_ path: String) throws(SystemError) -> String {
        let bytes = try readBytes(path)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads a whole file, into a buffer of its size (a state file is megabytes: growing a
    /// buffer as it is read would touch several times as much fresh memory).
    public static func readBytes(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        var info = stat()
        let expected = fstat(fd, &info) == 0 ? max(Int(info.st_size), 0) : 0
        var result = [UInt8](repeating: 0, count: expected + 1)  // one more: a file that grew is seen
        var count = 0
        while true {
            if count == result.count { result.append(contentsOf: repeatElement(0, count: max(result.count, 64 * 1024))) }
            let read = result.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if read < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)")
            }
            if read == 0 { break }
            count += read
        }
        result.removeLast(result.count - count)
        return result
    }

    /// Writes `bytes` to `fd` completely.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("write \(path)")
            }
            offset += written
        }
    }

    /// Writes all of `bytes` to `fd`.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        let failure = bytes.withUnsafeBytes { buffer -> Int32? in
            do throws(SystemError) {
                try writeAll(fd, buffer, path: path)
                return nil
            } catch {
                return error.code
            }
        }
        if let failure { throw SystemError("write \(path)", code: failure) }
    }

    /// Replaces `path` with `text` atomically: a temporary file in the same directory, then rename.
    public static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644, durable: Bool = true) throws(SystemError) {
        try writeAtomically(path, bytes: Array(text.utf8), mode: mode, durable: durable)
    }

    /// Replaces `path` with `bytes` atomically: a temporary file in the same directory, then
    /// rename. Not `durable`, it skips the fsync: for a cache whose loss in a crash costs nothing.
    public static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws(SystemError) {
        try stage(path, bytes: [bytes], mode: mode, durable: durable).commit()
    }

    /// Writes `bytes`, one buffer after the other (fsynced when `durable`), to a temporary file
    /// beside `path`, which ``StagedFile/commit()`` later puts in place atomically. `tag` tells
    /// apart two staged at once for one path.
    public static func stage(
        _ path: String, bytes: [[UInt8]], mode: mode_t = 0o644, tag: String = "", durable: Bool = true
    ) throws(SystemError) -> StagedFile {
        let temporary = "\(path).tmp.\(getpid())\(tag)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("create \(temporary)") }
        fchmod(fd, mode)  // the mode asked for, whatever the umask
        do throws(SystemError) {
            for part in bytes { try writeAll(fd, part, path: temporary) }
            guard !durable || fsync(fd) == 0 else { throw SystemError("fsync \(temporary)") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        return StagedFile(path: path, temporary: temporary)
    }

    /// Removes what writes to `path` left behind when killed: temporary files of processes that
    /// are gone (those of a live one are its own, in use).
    public static func removeAbandonedStages(of path: String) {
        let prefix = baseName(path) + ".tmp."
        let directory = directoryName(path)
        for name in listDirectory(directory, prefix: prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count).prefix { $0 != "." }), pid > 0,
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(directory + "/" + name)
        }
    }

    /// A file's new contents, written and fsynced under a temporary name (``stage(_:bytes:mode:tag:)``).
    public struct StagedFile: Sendable {
        /// Where ``commit()`` puts it.
        public let path: String
        let temporary: String

        /// Puts it in place (a rename: atomic).
        public func commit() throws(SystemError) {
            guard rename(temporary, path) == 0 else {
                let error = SystemError("rename \(temporary)")
                unlink(temporary)
                throw error
            }
        }

        /// Removes it, leaving the file at `path` as it was.
        public func discard() {
            unlink(temporary)
        }
    }

    /// The size of a regular file, or nil when there is none.
    public static func fileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    /// True when `path` exists (any type).
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Creates a directory and its parents; succeeds when it already exists.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if isDirectory(path) { return }
        let parent = directoryName(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir \(path)") }
    }

    /// True when `path` is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The directory part of a path, as `dirname(1)` gives it.
    public static func directoryName(_ path: String) -> String {
        // On the UTF-8 bytes: a mirror walk asks this for every symlink.
        var trimmed = path.utf8[...]
        while trimmed.count > 1 && trimmed.last == UInt8(ascii: "/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a path.
    public static func baseName(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    /// Removes a file; a missing file is not an error.
    public static func remove(_ path: String) {
        unlink(path)
    }

    /// Copies the file at `source` to a new file at `target` (which must not exist), `0644`.
    public static func copyFile(_ source: String, to target: String) throws(SystemError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw SystemError("open \(source)") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw SystemError("create \(target)") }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                unlink(target)
                throw SystemError("read \(source)")
            }
            if count == 0 { return }
            let written = buffer.withUnsafeBytes { bytes in
                Result { () throws(SystemError) in
                    try writeAll(output, UnsafeRawBufferPointer(rebasing: bytes[0..<count]), path: target)
                }
            }
            if case .failure(let error) = written {
                unlink(target)
                throw error
            }
        }
    }

    /// The names in a directory that start with `prefix`, without `.` and `..`; empty when it
    /// cannot be read.
    public static func listDirectory(_ path: String, prefix: String = "") -> [String] {
        listDirectory(path, prefixes: [prefix])
    }

    /// The names in a directory that start with any of `prefixes`, in one pass, without `.` and
    /// `..`; empty when it cannot be read.
    ///
    /// Names are compared as bytes before any String is made: pacman's CacheDir holds thousands
    /// of packages, and a call looks there for its own few temporary files.
    public static func listDirectory(_ path: String, prefixes: [String]) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        let wanted = prefixes.map { Array($0.utf8) }
        var names: [String] = []
        while let entry = readdir(directory) {
            withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let length = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
                let matches = wanted.contains { prefix in
                    prefix.isEmpty
                        || (prefix.count <= length
                            && prefix.withUnsafeBytes { memcmp(raw.baseAddress!, $0.baseAddress!, prefix.count) == 0 })
                }
                guard matches else { return }
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<length]), as: UTF8.self)
                if name != "." && name != ".." { names.append(name) }
            }
        }
        return names
    }
}

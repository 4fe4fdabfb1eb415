import CForkReader
import Glibc
import Synchronization

/// The temporary files of one call, next to `%o`, and the partial download that may be resumed.
///
/// Every source writes its own hidden file, `.<name of %o>.xfer-<pid>-<n>`; only a verified one
/// becomes `%o`. A partial file (an earlier `%o`, or a temporary file left by a killed run) is kept
/// in a pool of one and handed to the next source that can resume it.
public final class Workspace: Sendable {
    public let output: String
    private let directory: String
    private let prefixName: String
    private let counter = Atomic<Int>(0)
    private let pool = Mutex<(path: String, size: Int64)?>(nil)
    /// Whether an interrupt leaves the best temporary file as the output (pacman's per-file call).
    private let leavesPartialOnSignal: Bool
    /// The temporary files the interrupt handler knows, by path.
    private let registered = Mutex<[(path: String, slot: Int32)]>([])

    /// The workspace of `output`; with `leavesPartialOnSignal`, SIGINT, SIGTERM and SIGHUP leave
    /// the largest temporary file (cut to its bytes known to be right) as the output, the
    /// `.part` pacman resumes, instead of hidden files pacman never looks at.
    public init(output: String, leavesPartialOnSignal: Bool = false) {
        self.output = output
        self.leavesPartialOnSignal = leavesPartialOnSignal && xfer_partials_begin(output) == 0
        self.directory = FileSystem.directoryName(output)
        self.prefixName = ".\(FileSystem.baseName(output)).xfer-"
    }

    /// A fresh temporary path in the output's directory.
    public func temporaryPath() -> String {
        let path = "\(directory)/\(prefixName)\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
        if leavesPartialOnSignal {
            let slot = xfer_partials_add(path)
            if slot >= 0 { registered.withLock { $0.append((path, slot)) } }
        }
        return path
    }

    /// Says that only the first `bytes` of the temporary file at `path` are right (a download
    /// shared between sources writes pieces out of order).
    func markValid(_ path: String, upTo bytes: Int64) {
        guard leavesPartialOnSignal, let slot = registered.withLock({ $0.first { $0.path == path }?.slot }) else { return }
        xfer_partials_set_valid(slot, bytes)
    }

    /// Takes every temporary file out of the interrupt handler's hands.
    private func forgetRegistered() {
        guard leavesPartialOnSignal else { return }
        for entry in registered.withLock({ $0 }) { xfer_partials_remove(entry.slot) }
        registered.withLock { $0.removeAll() }
    }

    /// Gathers `%o` and files left by killed runs: the largest one below `limit` bytes is kept to
    /// resume from when `resumable`; everything else is deleted. A resumable file also looks in
    /// pacman 7.1's other download directories (``strayPartials()``).
    public func preparePrefix(resumable: Bool, limit: Int64?) {
        // One pass over the directory (CacheDir holds thousands of packages) finds this file's
        // temporary files, stale temporary files of other downloads among the other hidden ones,
        // and, in CacheDir, pacman 7.1's download directories.
        let isSandbox = FileSystem.baseName(directory).hasPrefix(Self.sandboxPrefix)
        var candidates: [String] = []
        var sandboxes: [String] = []
        for name in FileSystem.listDirectory(directory, prefixes: isSandbox ? ["."] : [".", Self.sandboxPrefix]) {
            if name.hasPrefix(prefixName) {
                candidates.append("\(directory)/\(name)")
            } else if name.hasPrefix(Self.sandboxPrefix) {
                sandboxes.append("\(directory)/\(name)")
            } else if Self.isStaleTemporaryFile(name, in: directory) {
                unlink("\(directory)/\(name)")
            }
        }
        if FileSystem.exists(output) {
            let moved = temporaryPath()
            if rename(output, moved) == 0 { candidates.append(moved) } else { unlink(output) }
        }
        if resumable { candidates += strayPartials(isSandbox: isSandbox, sandboxesBelow: sandboxes) }
        let sized = candidates.compactMap { path in FileSystem.fileSize(path).map { (path, $0) } }
        let best = sized.filter { resumable && $0.1 > 0 && $0.1 < (limit ?? .max) }.max { $0.1 < $1.1 }
        for (path, _) in sized where path != best?.0 { unlink(path) }
        pool.withLock { $0 = best }
    }

    /// Partial files of this download that pacman 7.1 left where it will not look again, taken
    /// over into this directory: in the sibling `download-XXXXXX` directories of a sandboxed
    /// `%o` (an interrupted transaction leaks its directory) and in the CacheDir above it (a run
    /// without DownloadUser killed mid-file), or, for a `%o` in CacheDir itself, in the
    /// `download-*` directories below it. Each is moved (or, from a directory this user cannot
    /// write, copied) to a fresh temporary path; a `download-*` directory emptied so is removed.
    /// `sandboxesBelow` are the `download-*` directories of a `%o` in CacheDir itself.
    func strayPartials(isSandbox: Bool, sandboxesBelow: [String]) -> [String] {
        let name = FileSystem.baseName(output)
        let partials = { (place: String) in [name].filter { FileSystem.exists("\(place)/\($0)") } }
        var sandboxes = sandboxesBelow
        var found: [(place: String, files: [String])] = []
        if isSandbox {
            let parent = FileSystem.directoryName(directory)
            var files = partials(parent)
            // One pass over CacheDir: the other download directories, and this file's temporary files.
            for entry in FileSystem.listDirectory(parent, prefixes: [Self.sandboxPrefix, prefixName]) {
                if entry.hasPrefix(prefixName) {
                    files.append(entry)
                } else if "\(parent)/\(entry)" != directory {
                    sandboxes.append("\(parent)/\(entry)")
                }
            }
            found.append((parent, files))
        }
        for sandbox in sandboxes {
            found.append((sandbox, partials(sandbox) + FileSystem.listDirectory(sandbox, prefixes: [prefixName])))
        }
        var taken: [String] = []
        for (place, files) in found {
            for file in files {
                let source = "\(place)/\(file)"
                let target = temporaryPath()
                if rename(source, target) == 0 || (try? FileSystem.copyFile(source, to: target)) != nil {
                    taken.append(target)
                }
            }
            if sandboxes.contains(place) && !files.isEmpty { rmdir(place) }  // only when nothing else is in it
        }
        return taken
    }

    /// After this many seconds untouched, another download's temporary file is taken to be a
    /// killed run's that nobody will resume (pacman asks for the same file again soon or never).
    static let staleAge: Int = 86_400

    /// True for a temporary file of ours (`.<name>.xfer-<pid>-<n>`) untouched for a day.
    static func isStaleTemporaryFile(_ name: String, in directory: String) -> Bool {
        guard let marker = name.firstRange(ofLiteral: ".xfer-") else { return false }
        let tail = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard tail.count == 2, Int(tail[0]) != nil, Int(tail[1]) != nil else { return false }
        var info = stat()
        guard lstat("\(directory)/\(name)", &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return Int(time(nil)) - info.st_mtim.tv_sec > staleAge
    }

    /// How pacman 7.1 names its temporary download directories (`download-XXXXXX`).
    static let sandboxPrefix = "download-"

    /// Takes the partial file to resume from, if any.
    public func takePrefix() -> String? {
        pool.withLock { pool in
            defer { pool = nil }
            return pool?.path
        }
    }

    /// Offers a partial file back for the next source; the smaller of two partial files is deleted.
    public func givePrefix(_ path: String, size: Int64) {
        let discarded: String? = pool.withLock { pool in
            guard let current = pool else {
                pool = (path, size)
                return nil
            }
            if size > current.size {
                pool = (path, size)
                return current.path
            }
            return path
        }
        if let discarded { unlink(discarded) }
    }

    /// Makes `path` the output, atomically (an interrupt from here on leaves it alone).
    public func promote(_ path: String) throws(SystemError) {
        forgetRegistered()
        guard rename(path, output) == 0 else { throw SystemError("rename \(path) to \(output)") }
    }

    /// Deletes this call's temporary files; the pooled prefix becomes the output when
    /// `keepingPrefix` (for a later run to resume) and is deleted otherwise.
    public func removeTemporaryFiles(keepingPrefix: Bool = false) {
        forgetRegistered()
        if keepingPrefix, let prefix = takePrefix(), rename(prefix, output) != 0 {
            unlink(prefix)
        }
        // This call's files are the ones it numbered: no need to list the directory again.
        let count = counter.load(ordering: .relaxed)
        if count > 0 {
            for number in 1...count { unlink("\(directory)/\(prefixName)\(getpid())-\(number)") }
        }
        pool.withLock { $0 = nil }
    }
}

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

    public init(output: String) {
        self.output = output
        self.directory = FileSystem.directoryName(output)
        self.prefixName = ".\(FileSystem.baseName(output)).xfer-"
    }

    /// A fresh temporary path in the output's directory.
    public func temporaryPath() -> String {
        "\(directory)/\(prefixName)\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
    }

    /// Gathers `%o` and files left by killed runs: the largest one below `limit` bytes is kept to
    /// resume from when `resumable`; everything else is deleted. A resumable file also looks in
    /// pacman 7.1's other download directories (``strayPartials()``).
    public func preparePrefix(resumable: Bool, limit: Int64?) {
        var candidates = FileSystem.listDirectory(directory, prefix: prefixName).map { "\(directory)/\($0)" }
        if FileSystem.exists(output) {
            let moved = temporaryPath()
            if rename(output, moved) == 0 { candidates.append(moved) } else { unlink(output) }
        }
        if resumable { candidates += strayPartials() }
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
    func strayPartials() -> [String] {
        let name = FileSystem.baseName(output)
        var places: [String] = []
        var parent = directory
        if FileSystem.baseName(directory).hasPrefix(Self.sandboxPrefix) {
            parent = FileSystem.directoryName(directory)
            places.append(parent)
        }
        for sibling in FileSystem.listDirectory(parent, prefix: Self.sandboxPrefix) where "\(parent)/\(sibling)" != directory {
            places.append("\(parent)/\(sibling)")
        }
        var taken: [String] = []
        for place in places {
            let found = [name].filter { FileSystem.exists("\(place)/\($0)") }
                + FileSystem.listDirectory(place, prefix: prefixName)
            for file in found {
                let source = "\(place)/\(file)"
                let target = temporaryPath()
                if rename(source, target) == 0 || (try? FileSystem.copyFile(source, to: target)) != nil {
                    taken.append(target)
                }
            }
            if place != parent && !found.isEmpty { rmdir(place) }  // only when nothing else is in it
        }
        return taken
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

    /// Makes `path` the output, atomically.
    public func promote(_ path: String) throws(SystemError) {
        guard rename(path, output) == 0 else { throw SystemError("rename \(path) to \(output)") }
    }

    /// Deletes this call's temporary files; the pooled prefix becomes the output when
    /// `keepingPrefix` (for a later run to resume) and is deleted otherwise.
    public func removeTemporaryFiles(keepingPrefix: Bool = false) {
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

import Glibc
import Synchronization

/// The verified files `ipfs-xfer serve` answers from, fetched from IPFS sources only.
///
/// Packages and signatures (whose names never change content) are kept in `StateDir/serve` for
/// a while, so Range requests and concurrent clients share one download; requests for the same
/// file while it downloads wait for that download. Databases are fetched for each request and
/// deleted after it. A file that is not verified within ``XferConfig/serveTimeout`` is given up.
final class ServeStore: Sendable {
    /// A file ready to send.
    struct Ready: Sendable {
        var path: String
        /// Where it came from (`gateway http://…`, or `cache` when it was already here).
        var source: String
        /// Whether it is deleted once sent.
        var isTemporary: Bool
    }

    let config: XferConfig
    let directory: String
    let userAgent: String?
    let warn: @Sendable (String) -> Void
    /// How long an unused file stays.
    static let keepTime: Double = 900
    private let inFlight = Mutex<[String: Task<Ready?, Never>]>([:])
    private let counter = Atomic<Int>(0)

    init(config: XferConfig, userAgent: String?, warn: @escaping @Sendable (String) -> Void) throws(SystemError) {
        self.config = config
        self.directory = config.stateDir + "/serve"
        self.userAgent = userAgent
        self.warn = warn
        try FileSystem.makeDirectories(directory)
    }

    /// The verified file at `path` (`<repo>/os/<arch>/<file>` below the server), or nil when
    /// IPFS cannot serve it in time.
    func file(_ file: RepoFile, path: String) async -> Ready? {
        guard !file.isDatabaseOrItsSignature else {
            let output = "\(directory)/.request-\(counter.add(1, ordering: .relaxed).newValue)-\(file.fileName)"
            return await fetch(path: path, output: output, isTemporary: true)
        }
        let output = "\(directory)/\(file.fileName)"
        if FileSystem.fileSize(output) != nil {
            utimes(output, nil)  // recently used
            return Ready(path: output, source: "cache", isTemporary: false)
        }
        let task = inFlight.withLock { running in
            if let task = running[file.fileName] { return task }
            let task = Task { await self.fetch(path: path, output: output, isTemporary: false) }
            running[file.fileName] = task
            return task
        }
        let ready = await task.value
        inFlight.withLock { _ = $0.removeValue(forKey: file.fileName) }
        return ready
    }

    /// Runs the IPFS race for one file with the time limit.
    private func fetch(path: String, output: String, isTemporary: Bool) async -> Ready? {
        pruneUnused()
        var job = FetchJob(
            url: "http://127.0.0.1" + path, output: output, config: config, userAgent: userAgent,
            showsProgress: false, warn: warn)
        job.usesMirrors = false
        job.warnings = TransactionWarnings(.thisProcess)
        let race = job
        let limit = config.serveTimeout
        return await withTaskGroup(of: Ready?.self) { group in
            group.addTask {
                guard let outcome = try? await race.run() else { return nil }
                return Ready(path: output, source: outcome.source, isTemporary: isTemporary)
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(limit * 1e9))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            for await late in group {
                // The download finished just as time ran out: a database is not sent, so it goes.
                if let late, late.isTemporary { unlink(late.path) }
            }
            return first
        }
    }

    /// Deletes files nobody asked for in ``keepTime`` seconds, and abandoned temporary files.
    private func pruneUnused() {
        let now = Double(time(nil))
        for name in FileSystem.listDirectory(directory) {
            let path = "\(directory)/\(name)"
            var info = stat()
            guard stat(path, &info) == 0, now - Double(info.st_mtim.tv_sec) > Self.keepTime else { continue }
            unlink(path)
        }
    }
}

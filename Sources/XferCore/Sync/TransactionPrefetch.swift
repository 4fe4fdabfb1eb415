import Glibc
import Synchronization

/// `ipfs-xfer sync`'s downloads: every file a transaction needs, fetched into pacman's CacheDir
/// several at a time through the same sources, race and verification as XferCommand.
///
/// Each file is downloaded as `<CacheDir>/<file>.part`, pacman's own partial name, and renamed
/// when verified. A failed or interrupted package leaves its partial data as that `.part`, which
/// pacman's XferCommand call resumes; nothing else is left behind.
public struct TransactionPrefetch: Sendable {
    /// One file to fetch.
    public struct Item: Sendable, Equatable {
        public var url: String
        public var fileName: String
        public var expectation: Expectation
    }

    /// What happened to one file.
    public struct FileResult: Sendable {
        public var item: Item
        /// The source that served it, or nil when it failed.
        public var outcome: FetchJob.Outcome?
        /// Why it failed (one line).
        public var failure: String?
    }

    /// The files of a transaction: what is to be fetched, and how many are already cached.
    public struct Plan: Sendable {
        public var items: [Item]
        public var cached: Int
        /// Bytes to fetch, where known (packages).
        public var knownBytes: Int64 { items.reduce(0) { $0 + ($1.expectation.knownSize ?? 0) } }
    }

    public let config: XferConfig
    public let pacman: PacmanConfig
    /// How many files are fetched at once.
    public let parallel: Int
    public let userAgent: String?
    public let warn: @Sendable (String) -> Void

    public init(
        config: XferConfig, pacman: PacmanConfig, parallel: Int, userAgent: String?,
        warn: @escaping @Sendable (String) -> Void
    ) {
        self.config = config
        self.pacman = pacman
        self.parallel = max(parallel, 1)
        self.userAgent = userAgent
        self.warn = warn
    }

    /// The CacheDir downloads go to: the first one that is writable, as pacman chooses.
    public var cacheDir: String? {
        pacman.cacheDirs.first { access($0, W_OK) == 0 }
    }

    /// One line of pacman's `--print-format '%r %l'`: the repo and the file's URL.
    public struct Listed: Sendable, Equatable {
        public var repo: String
        public var url: String

        /// Parses a `repo url` line; nil for anything else pacman prints.
        public init?(line: Substring) {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[1].contains("://") else { return nil }
            repo = String(parts[0])
            url = String(parts[1])
        }
    }

    /// Works out the files behind pacman's list: each package and, when its repo checks
    /// signatures, its `.sig`. A package pacman found in CacheDir (listed as a `file://` URL) is
    /// checked here; one with the wrong size or SHA-256 is fetched again from the repo's mirror.
    public func plan(_ listed: [Listed]) -> Plan {
        let mirrorlist = Mirrorlist(files: config.mirrorlists)
        var plan = Plan(items: [], cached: 0)
        let state = try? StateDirectory(path: config.stateDir)  // for the sync dbs' indexes
        for entry in listed {
            let fileName = FileSystem.baseName(entry.url)
            guard PathSafety.isSafeSegment(fileName), PathSafety.isSafeSegment(entry.repo) else { continue }
            let record = try? IndexedSyncDatabase(path: pacman.syncDatabase(repo: entry.repo), state: state)
                .record(forFile: fileName)
            let wantsSignature = pacman.wantsPackageSignatures(repo: entry.repo)
            // pacman lists a package it has cached by its path there; it is checked here, and
            // what is fetched comes from the repo's first mirror.
            var url = entry.url
            let isListedAsCached = url.hasPrefix("file://")
            let alreadyCached = isListedAsCached && record.map(isCached) == true
            if alreadyCached { plan.cached += 1 }
            if isListedAsCached {
                guard let server = mirrorlist.servers.first else { continue }  // pacman deals with it
                url = server.url(repo: entry.repo, arch: pacman.architecture, file: fileName)
            }
            if !alreadyCached {
                plan.items.append(Item(url: url, fileName: fileName, expectation: record.map(Expectation.exact) ?? .complete))
            }
            if wantsSignature && (!alreadyCached || pacman.cachedPath(of: fileName + ".sig") == nil) {
                plan.items.append(Item(url: url + ".sig", fileName: fileName + ".sig", expectation: .signature))
            }
        }
        return plan
    }

    /// True when a CacheDir holds the package with its size and SHA-256.
    private func isCached(_ record: PackageRecord) -> Bool {
        guard let path = pacman.cachedPath(of: record.fileName), FileSystem.fileSize(path) == record.size else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard let hasher = try? FileHasher(fd: fd, path: path) else { return false }
        return (try? hasher.finish(size: record.size)) == record.sha256
    }

    /// Makes sure the root (and its index) is resolved and cached before the files start, so
    /// that every file goes straight to it instead of each one resolving it.
    public func prepareRoot() async {
        guard config.mirrorRoot != nil, let state = try? StateDirectory(path: config.stateDir) else { return }
        let now = Int64(time(nil))
        let choice = await RootLookup(config: config, userAgent: userAgent, warn: warn)
            .choose(state: state, now: now, waitForFresh: true)
        guard let root = choice?.root, root.namespace == .ipfs else { return }
        let cache = MirrorIndexCache(state: state)
        if case .unknown = cache.cached(for: root) {
            let health = state.loadHealth()
            let reader = RootFileReader(
                config: config, userAgent: userAgent, timeout: max(config.hedgeDelay, 1), down: health.down(now: now))
            await cache.refresh(for: root, reader: reader)
        }
    }

    /// Fetches every item into `cacheDir`, `parallel` at a time, the largest first (as pacman's
    /// own downloader does, so that the longest download does not start last); cancelling the
    /// task stops them, keeping partial packages as `.part`. `progress` sees every attempt's bytes.
    public func fetch(_ items: [Item], into cacheDir: String, progress: PrefetchProgress) async -> [FileResult] {
        let largestFirst = items.enumerated().sorted { first, second in
            let (a, b) = (first.element.expectation.knownSize ?? 0, second.element.expectation.knownSize ?? 0)
            return a != b ? a > b : first.offset < second.offset
        }.map(\.element)
        return await withTaskGroup(of: FileResult.self) { group in
            var pending = largestFirst[...]
            var results: [FileResult] = []
            for _ in 0..<parallel {
                guard let item = pending.popFirst() else { break }
                group.addTask { await fetchOne(item, into: cacheDir, progress: progress) }
            }
            for await result in group {
                results.append(result)
                progress.finished(result)
                if !Task.isCancelled, let item = pending.popFirst() {
                    group.addTask { await fetchOne(item, into: cacheDir, progress: progress) }
                }
            }
            return results
        }
    }

    private func fetchOne(_ item: Item, into cacheDir: String, progress: PrefetchProgress) async -> FileResult {
        let final = cacheDir + item.fileName
        let board = ProgressBoard()
        progress.started(board)
        defer { progress.stopped(board) }
        var job = FetchJob(
            url: item.url, output: final + ".part", config: config, userAgent: userAgent, showsProgress: false,
            warn: warn)
        job.knownExpectation = item.expectation
        job.board = board
        job.keepsPartialOutput = item.expectation.isResumable
        job.warnings = TransactionWarnings(.thisProcess)
        do {
            let outcome = try await job.run()
            guard rename(final + ".part", final) == 0 else {
                let error = SystemError("rename \(final).part")
                unlink(final + ".part")
                return FileResult(item: item, outcome: nil, failure: "\(error)")
            }
            return FileResult(item: item, outcome: outcome, failure: nil)
        } catch {
            return FileResult(item: item, outcome: nil, failure: "\(error)")
        }
    }
}

/// The aggregate progress of a prefetch: files and bytes done, and the attempts running.
public final class PrefetchProgress: Sendable {
    private struct Totals {
        var boards: [ObjectIdentifier: ProgressBoard] = [:]
        var filesDone = 0
        var filesFailed = 0
        var bytesDone: Int64 = 0
    }

    private let totals = Mutex(Totals())
    private let start = Monotonic.nanoseconds()
    /// Files to fetch and their known bytes.
    public let files: Int
    public let bytes: Int64

    public init(files: Int, bytes: Int64) {
        self.files = files
        self.bytes = bytes
    }

    func started(_ board: ProgressBoard) {
        totals.withLock { $0.boards[ObjectIdentifier(board)] = board }
    }

    func stopped(_ board: ProgressBoard) {
        totals.withLock { _ = $0.boards.removeValue(forKey: ObjectIdentifier(board)) }
    }

    func finished(_ result: TransactionPrefetch.FileResult) {
        totals.withLock { totals in
            if let outcome = result.outcome {
                totals.filesDone += 1
                totals.bytesDone += outcome.bytes
            } else {
                totals.filesFailed += 1
            }
        }
    }

    /// One status line: files, bytes, rate.
    public func line() -> String {
        let (done, failed, bytes) = totals.withLock { totals in
            (totals.filesDone, totals.filesFailed,
             totals.bytesDone + totals.boards.values.reduce(0) { $0 + ($1.leader()?.bytes ?? 0) })
        }
        let rate = Double(bytes) / max(Monotonic.seconds(since: start), 0.001)
        var text = "ipfs-xfer: \(done)/\(files) files  \(ByteCount.format(bytes))"
        if self.bytes > 0 { text += " / \(ByteCount.format(self.bytes))" }
        text += "  \(ByteCount.format(Int64(rate)))/s"
        if failed > 0 { text += "  \(failed) left for pacman" }
        return text
    }
}

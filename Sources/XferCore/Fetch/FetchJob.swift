import CurlTransfer
import Synchronization
import IPFSData
@preconcurrency import Glibc

/// pacman's XferCommand job: fetch `%u` into `%o` from the fastest source that gives verified bytes.
///
/// IPFS sources (local gateways, the mount) start at once; the HTTP mirrors (`%u` first, then the
/// rest of the mirrorlist) join when IPFS has failed or gone ``XferConfig/hedgeDelay`` without a
/// byte. `%o` appears only when a file is complete and verified; on failure there is none.
public struct FetchJob: Sendable {
    /// What the job reports when it succeeds.
    public struct Outcome: Sendable, Equatable {
        public var kind: SourceKind
        public var source: String
        public var bytes: Int64
        public var seconds: Double
        public var resumedFrom: Int64
    }

    public let url: String
    public let output: String
    public let config: XferConfig
    /// The User-Agent for HTTP requests; pacman exports its own as `HTTP_USER_AGENT`.
    public let userAgent: String?
    /// Whether to draw the progress line (stderr is a terminal).
    public let showsProgress: Bool
    /// Where warnings go (one line each).
    public let warn: @Sendable (String) -> Void
    /// What the file must be, when the caller already knows (``ipfs-xfer sync`` reads each sync
    /// db once); nil looks it up in the sync db.
    public var knownExpectation: Expectation?
    /// Where the attempts report their bytes, for a caller drawing its own progress.
    public var board: ProgressBoard?
    /// Whether a failed or cancelled package download leaves its longest partial file as
    /// `output` (a `.part` for pacman to resume) instead of deleting it.
    public var keepsPartialOutput = false
    /// Whether the HTTP mirrors may serve the file; without them only IPFS sources race.
    public var usesMirrors = true
    /// Whether SIGINT, SIGTERM and SIGHUP leave the best partial package as `output` (pacman's
    /// per-file call: the `.part` pacman resumes) rather than end with hidden temporary files.
    public var leavesPartialOnSignal = false
    /// Which warnings are said once per transaction, and whose transaction this call is part of.
    public var warnings = TransactionWarnings(.parent)

    public init(
        url: String, output: String, config: XferConfig, userAgent: String?, showsProgress: Bool,
        warn: @escaping @Sendable (String) -> Void
    ) {
        self.url = url
        self.output = output
        self.config = config
        self.userAgent = userAgent
        self.showsProgress = showsProgress
        self.warn = warn
    }

    /// Runs the job; throws a ``FetchError`` or ``URLMapper/MappingError`` with a one-line reason.
    public func run() async throws -> Outcome {
        // libcurl's start-up (global init, the multi handle) runs on its own thread, overlapping
        // with the work below instead of waiting for the first transfer.
        let callStart = Monotonic.nanoseconds()
        CurlMulti.prepareInBackground()
        let directory = FileSystem.directoryName(output)
        guard access(directory, W_OK) == 0 else {
            throw FetchError.outputNotWritable(directory: directory, user: Self.currentUser())
        }
        let mapping = try URLMapper(mirrorlist: Mirrorlist(files: config.mirrorlists), layout: config.layout).map(url)
        let fileName = FileSystem.baseName(url)
        let state = openState()
        let (expectation, searched) = knownExpectation.map { ($0, []) } ?? expectation(for: mapping.file, state: state)
        // A package no sync db lists can only be checked for completeness: said once it is
        // served, logged, and with RequireVerified taken from `%u` alone.
        let isUnverified = expectation == .complete && mapping.file?.kind == .package
        let now = Int64(time(nil))
        let health = state?.loadHealth() ?? SourceHealth()
        let isDatabase = mapping.file?.isDatabaseOrItsSignature ?? false
        let choice = mapping.file == nil ? nil : await RootLookup(config: config, userAgent: userAgent, warn: warn, warnings: warnings)
            .choose(state: state, now: now, waitForFresh: isDatabase)
        // Reads at the root wait at most this long, and skip sources known to be down.
        let reader = RootFileReader(
            config: config, userAgent: userAgent, timeout: max(config.hedgeDelay, 1), down: health.down(now: now))
        var root = choice?.root
        if isDatabase, let chosen = choice, let file = mapping.file,
           !(await databaseMayComeFromIPFS(chosen, mapping: mapping, file: file, state: state, reader: reader)) {
            root = nil
        }
        // The root's index, when cached, sends the file straight to its CID; when it is not
        // known yet, it is fetched alongside this download, for the next calls.
        var indexed: MirrorIndex.Entry?
        var indexRefresh: Task<Void, Never>?
        if let root, root.namespace == .ipfs, let state, let file = mapping.file {
            let cache = MirrorIndexCache(state: state)
            switch cache.cached(for: root) {
            case .index(let index):
                indexed = index.entry(for: (config.layout.expand(repo: file.repo, arch: file.arch) + [file.fileName])
                    .joined(separator: "/"))
            case .absent:
                break
            case .unknown:
                indexRefresh = Task { await cache.refresh(for: root, reader: reader) }
            }
        }
        let plan = SourcePlan(mapping: mapping, root: root, fileCID: indexed?.cid, config: config, userAgent: userAgent)
        var (ipfs, ordered) = plan.ordered(health: health, now: now)
        var chain = usesMirrors ? ordered : ordered.filter { $0.kind.isIPFS }
        if isUnverified && config.requireVerified {
            ipfs = []
            chain = usesMirrors ? Array(plan.mirrors.prefix(1)) : []  // the plan's mirrors start with `%u`
        }

        let workspace = Workspace(output: output, leavesPartialOnSignal: leavesPartialOnSignal && expectation.isResumable)
        workspace.preparePrefix(resumable: expectation.isResumable, limit: expectation.knownSize)
        var keepsPrefix = keepsPartialOutput
        defer { workspace.removeTemporaryFiles(keepingPrefix: keepsPrefix) }

        let board = showsProgress ? ProgressBoard() : self.board
        let line = ProgressLine(fileName: fileName, total: expectation.knownSize)
        let drawing = board.map { board in Task { await line.run(board: board) } }
        let rates = plan.ipfs.isEmpty ? SourceRates() : state?.loadRates() ?? SourceRates()
        var fetched = Fetched()
        if case .exact(let record) = expectation, let fileCID = indexed?.cid,
           let segmented = await fetchSegmented(
               record: record, fileCID: fileCID, mapping: mapping, down: reader.down, workspace: workspace, board: board) {
            fetched = Fetched(delivery: segmented.delivery(fileName: fileName, now: now), healthChanges: segmented.healthChanges)
        } else if case .exact(let record) = expectation, record.size >= SharedDownload.minimumSize, !ipfs.isEmpty,
                  !chain.isEmpty {
            // Nil: the pieces did not make the sha256, and the whole-file race below tries again.
            fetched = await fetchShared(
                record: record, ipfs: ipfs, chain: chain, rates: rates, now: now, workspace: workspace, board: board,
                fileName: fileName) ?? Fetched()
        }
        if fetched.delivery == nil && fetched.allowsWholeRace {
            fetched.add(await fetchWhole(
                ipfs: ipfs, chain: chain, expectation: expectation, isUnverified: isUnverified, rates: rates, now: now,
                workspace: workspace, board: board, fileName: fileName))
        }
        drawing?.cancel()
        await drawing?.value

        do {
            try state?.updateHealth(fetched.healthChanges, now: now)
            // Rates steer the hedge between IPFS and the mirrors; without IPFS they would only cost.
            if !plan.ipfs.isEmpty { try state?.updateRates(fetched.speeds, now: now) }
        } catch {
            warnings.once("state", "cannot update source health in \(config.stateDir): \(error)", warn: warn)
        }
        guard let delivery = fetched.delivery else {
            if showsProgress { line.clear() }
            // A signature no server has is how pacman learns a repo is unsigned (DatabaseOptional).
            await Self.finish(choice?.refresh, indexRefresh, within: 0)
            if fetched.isNowhere, mapping.file?.kind == .signature { throw FetchError.noSignature(file: fileName) }
            throw FetchError.allSourcesFailed(
                file: fileName, reasons: fetched.reasons.isEmpty ? ["no source is configured for it"] : fetched.reasons)
        }
        keepsPrefix = false  // a loser's partial file must not replace the winner
        do {
            try workspace.promote(delivery.path)
        } catch {
            throw FetchError.system(error)
        }
        if isUnverified {
            let place = searched.isEmpty ? "" : " (looked in \(searched.joined(separator: ", ")))"
            warn("\(fileName): no sync db lists it\(place); it is not verified"
                + (config.requireVerified ? " (RequireVerified: taken from \(url) only)" : ""))
        }
        if let state, !delivery.databaseRecords.isEmpty, fileName.hasSuffix(".db") {
            storeIndex(of: delivery.databaseRecords, state: state)
        }
        let outcome = delivery.outcome
        if showsProgress { line.finish(bytes: outcome.bytes, seconds: outcome.seconds, source: outcome.source) }
        do {
            for entry in delivery.logEntries { try state?.log(entry) }
        } catch {
            warnings.once("log", "cannot write the transfer log in \(config.stateDir): \(error)", warn: warn)
        }
        // Work for the next calls (the root's refresh, its index) may finish until HedgeDelay
        // after the start; past that it is left to a later call, and this one ends now.
        await Self.finish(choice?.refresh, indexRefresh, within: config.hedgeDelay - Monotonic.seconds(since: callStart))
        return outcome
    }

    /// A verified file ready to become the output, and what the transfer log gets for it (one
    /// line per source that sent part of it).
    struct Delivery: Sendable {
        var path: String
        var outcome: Outcome
        var logEntries: [TransferLogEntry]
        /// A database's package records, for its index.
        var databaseRecords: [PackageRecord] = []
    }

    /// Indexes a database just delivered to `%o` under the path pacman moves it to, so that the
    /// package calls after it find their records without inflating it.
    private func storeIndex(of records: [PackageRecord], state: StateDirectory) {
        var info = stat()
        guard stat(output, &info) == 0 else { return }
        let key = SyncDatabaseIndex.Key(path: SyncDatabaseLocator.finalPath(ofDatabaseAt: output), info: info)
        do {
            try IndexedSyncDatabase.storeIndex(of: records, for: key, state: state)
        } catch {
            warn("cannot write the index of \(key.path) in \(config.stateDir): \(error)")
        }
    }

    /// The freshness guard for a database: the root's `lastupdate` (read once per root and
    /// cached) against the HTTP mirror's.
    private func databaseMayComeFromIPFS(
        _ choice: RootLookup.Choice, mapping: URLMapper.Mapping, file: RepoFile, state: StateDirectory?,
        reader: RootFileReader
    ) async -> Bool {
        // Bounded by HedgeDelay: on a hung gateway the database then comes from the mirror in
        // HedgeDelay plus the mirror's own time.
        let limit = config.hedgeDelay
        let freshness = FreshnessGuard(config: config, userAgent: userAgent, timeout: limit, down: reader.down)
        async let mirror = Deadline.value(within: limit) { await freshness.mirrorLastUpdate(mapping: mapping, file: file) }
        var rootTime = choice.resolved?.lastUpdate
        if rootTime == nil {
            let root = choice.root
            rootTime = await Deadline.value(within: limit) { await freshness.rootLastUpdate(root: root) }
            if let state, var resolved = choice.resolved, let rootTime, let configured = config.mirrorRoot {
                resolved.lastUpdate = rootTime
                try? RootCache(state: state).store(resolved, for: configured.description)
            }
        }
        return FreshnessGuard.allowsIPFS(root: rootTime, mirror: await mirror)
    }

    /// Waits for the tasks given at most `seconds` (none when it is 0 or less), then cancels what is left (a task stuck in a
    /// read that ignores cancellation is left behind; the process ends soon after).
    ///
    /// With none, it returns before building a list: the first use of an array of tasks costs
    /// pacman's per-file call a conformance scan of the whole binary (`Never: Error`).
    static func finish(_ first: Task<Void, Never>?, _ second: Task<Void, Never>?, within seconds: Double) async {
        guard first != nil || second != nil else { return }
        let tasks = [first, second].compactMap { $0 }
        let done = DoneFlag()
        Task {
            for task in tasks { await task.value }
            done.set()
        }
        let start = Monotonic.nanoseconds()
        while !done.isSet && Monotonic.seconds(since: start) < seconds {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        for task in tasks { task.cancel() }
    }

    /// What the file must be: a package is checked against the first sync db that lists it
    /// (``SyncDatabaseLocator``: the db of the pacman that started us first), looked up through
    /// its index in StateDir. `searched` names the dbs that exist when none lists the package.
    func expectation(for file: RepoFile?, state: StateDirectory?) -> (expectation: Expectation, searched: [String]) {
        guard let file else { return (.complete, []) }
        switch file.kind {
        case .database: return (.database, [])
        case .signature: return (.signature, [])
        case .other: return (.complete, [])
        case .package:
            let locator = SyncDatabaseLocator(
                output: output, invocation: PacmanInvocation.parent(), configuredPacman: config.pacmanConfig)
            // A db that is missing answers nil, like one that does not list the package.
            let lookUp = { (path: String) in try? IndexedSyncDatabase(path: path, state: state).record(forFile: file.fileName) }
            var candidates = locator.candidates(repo: file.repo)
            for path in candidates {
                if let record = lookUp(path) ?? nil { return (.exact(record), []) }
            }
            let configured = locator.configuredCandidate(repo: file.repo)
            if !candidates.contains(configured) {
                if let record = lookUp(configured) ?? nil { return (.exact(record), []) }
                candidates.append(configured)
            }
            return (.complete, candidates.filter(FileSystem.exists))
        }
    }

    /// Opens StateDir, or says (once per transaction) why it cannot and carries on without it.
    private func openState() -> StateDirectory? {
        do {
            return try StateDirectory(path: config.stateDir)
        } catch {
            warnings.once(
                "state",
                "StateDir \(config.stateDir) is not writable by \(Self.currentUser()) (\(error)); "
                    + "sources that are down will be retried on every call (said once per transaction)",
                warn: warn)
            return nil
        }
    }

    /// True for the errors that say the source itself is at fault, not the file or this machine.
    static func isSourceFailure(_ error: any Error, kind: SourceKind) -> Bool {
        switch error {
        case let error as TransferError: error.isSourceFailure
        case is VerificationError: kind.isIPFS  // a trusted source sent bad bytes
        case is VerifiedCARWalk.Failure: true  // a gateway sent a bad, wrong or extra block
        case is MemoryReceiver.Failure: true  // a raw block over the 2 MiB limit
        case let error as PieceSink.Stop: error != .reached  // a bad answer to a range request
        case let error as MountSource.MountError:
            if case .readFailed = error { true } else { false }
        default: false
        }
    }

    /// The user name (or uid) this process runs as, for messages.
    static func currentUser() -> String {
        let uid = getuid()
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name {
            return "\(String(cString: name)) (uid \(uid))"
        }
        return "uid \(uid)"
    }
}

/// A flag one task sets and another polls.
private final class DoneFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() {
        value.store(true, ordering: .releasing)
    }

    var isSet: Bool { value.load(ordering: .acquiring) }
}

import CForkReader
@preconcurrency import Glibc

/// `ipfs-xfer sync [pacman arguments…]`: a whole transaction's downloads in parallel, then pacman.
///
/// pacman runs XferCommand one file at a time (ParallelDownloads is ignored for it), so this
/// asks pacman for the download list (`--print --print-format '%r %l'`, after refreshing the
/// databases itself for `-y`: ``DatabaseRefresh``), fetches everything into CacheDir several at a time,
/// and then runs pacman with the user's arguments, which finds the files cached. What could not
/// be fetched is left to pacman, which gets it through XferCommand as usual.
public struct PacmanSync: Sendable {
    /// Why the sync could not run.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case badArguments(PacmanArguments.ParseError)
        case pacmanFailed(command: String, status: ChildProcess.Status)
        case system(SystemError)
        case noCacheDir([String])
        case refresh(String)

        public var description: String {
            switch self {
            case .badArguments(let error): "\(error)"
            case .pacmanFailed(let command, .exited(let code)): "\(command) exited with status \(code)"
            case .pacmanFailed(let command, .signalled(let signal)): "\(command) was killed by signal \(signal)"
            case .system(let error): "\(error)"
            case .refresh(let reason): "failed to synchronize all databases (\(reason))"
            case .noCacheDir(let directories):
                "no writable CacheDir among \(directories.joined(separator: ", ")) (run as root, or as a user who may write there)"
            }
        }
    }

    /// What to do once the downloads are done.
    public enum Next: Sendable, Equatable {
        /// Run pacman with these arguments (the program included).
        case runPacman([String])
        /// Nothing more to do (a refresh alone); exit with this status.
        case exit(Int32)
    }

    public let config: XferConfig
    /// The pacman program (`pacman`, searched in PATH).
    public let pacman: String
    /// pacman's arguments, as the user gave them.
    public let arguments: [String]
    public let parallel: Int
    public let userAgent: String?
    public let showsProgress: Bool
    public let say: @Sendable (String) -> Void
    public let warn: @Sendable (String) -> Void

    public init(
        config: XferConfig, pacman: String, arguments: [String], parallel: Int, userAgent: String?,
        showsProgress: Bool, say: @escaping @Sendable (String) -> Void, warn: @escaping @Sendable (String) -> Void
    ) {
        self.config = config
        self.pacman = pacman
        self.arguments = arguments
        self.parallel = parallel
        self.userAgent = userAgent
        self.showsProgress = showsProgress
        self.say = say
        self.warn = warn
    }

    /// Refreshes, prefetches, and says what to run next; `interrupted` is polled while files
    /// download (a signal stops them, keeping partial packages as `.part`).
    public func run(interrupted: @escaping @Sendable () -> Int32) async throws(Failure) -> Next {
        let parsed: PacmanArguments
        do {
            parsed = try PacmanArguments(arguments)
        } catch {
            throw .badArguments(error)
        }
        guard parsed.isSyncTransaction else { return .runPacman([pacman] + arguments) }
        if parsed.refreshCount > 0 {
            try await refreshDatabases(parsed)
            guard parsed.hasWork else { return .exit(0) }
        }
        let listing = [pacman] + parsed.printingURLs()
        let (status, output) = try runChecked(listing, capture: true)
        guard status == .exited(0) else {
            // pacman explains the problem (an unknown target, a conflict) better when it runs itself.
            return .runPacman([pacman] + parsed.withoutRefresh())
        }
        let listed = String(decoding: output, as: UTF8.self).split(separator: "\n")
            .compactMap(TransactionPrefetch.Listed.init(line:))
        let prefetch = TransactionPrefetch(
            config: config, pacman: pacmanConfig(parsed), parallel: parallel, userAgent: userAgent, warn: warn)
        let plan = prefetch.plan(listed)
        if !plan.items.isEmpty {
            guard let cacheDir = prefetch.cacheDir else { throw .noCacheDir(prefetch.pacman.cacheDirs) }
            await prefetch.prepareRoot()
            let results = await download(plan, into: cacheDir, with: prefetch, interrupted: interrupted)
            let signal = interrupted()
            if signal != 0 { return .exit(128 + signal) }
            say(Self.summary(results, cached: plan.cached))
        } else if plan.cached > 0 {
            say(":: ipfs-xfer: all \(plan.cached) packages already cached")
        }
        return .runPacman([pacman] + parsed.withoutRefresh())
    }

    /// `-y`: the databases refreshed here, all at once and without pacman's 2 s sleep after each
    /// missing optional `.db.sig` (``DatabaseRefresh``); pacman then runs without `-y`.
    private func refreshDatabases(_ parsed: PacmanArguments) async throws(Failure) {
        let refresh = DatabaseRefresh(
            config: config, pacman: pacmanConfig(parsed), force: parsed.refreshCount > 1, userAgent: userAgent, warn: warn)
        let outcomes: [(repo: String, outcome: DatabaseRefresh.Outcome)]
        do {
            outcomes = try await refresh.run()
        } catch {
            throw .refresh("\(error)")
        }
        var said: [String] = []
        var failures: [String] = []
        for (repo, outcome) in outcomes {
            switch outcome {
            case .updated(let source): said.append("\(repo) updated (\(source))")
            case .upToDate: said.append("\(repo) is up to date")
            case .keptNewer: said.append("\(repo) kept (the one served was older)")
            case .failed(let reason): failures.append("\(repo): \(reason)")
            }
        }
        say(":: ipfs-xfer: databases: " + (said + failures.map { "failed \($0)" }).joined(separator: ", "))
        guard failures.isEmpty else { throw .refresh(failures.joined(separator: "; ")) }
    }

    private func runChecked(_ argv: [String], capture: Bool) throws(Failure) -> (status: ChildProcess.Status, output: [UInt8]) {
        do {
            return try ChildProcess.run(argv, capture: capture)
        } catch {
            throw .system(error)
        }
    }

    /// pacman.conf as the arguments select it, with the paths pacman derives from them
    /// (`--dbpath`, `--root`, `--sysroot`, `--cachedir`).
    func pacmanConfig(_ parsed: PacmanArguments) -> PacmanConfig {
        PacmanInvocation(arguments: parsed).pacmanConfig(defaultConfig: config.pacmanConfig)
    }

    private func download(
        _ plan: TransactionPrefetch.Plan, into cacheDir: String, with prefetch: TransactionPrefetch,
        interrupted: @escaping @Sendable () -> Int32
    ) async -> [TransactionPrefetch.FileResult] {
        let progress = PrefetchProgress(files: plan.items.count, bytes: plan.knownBytes)
        let work = Task { await prefetch.fetch(plan.items, into: cacheDir, progress: progress) }
        let showsProgress = showsProgress
        let watcher = Task {
            while !Task.isCancelled {
                if interrupted() != 0 { work.cancel() }
                if showsProgress { fputs("\r\u{1B}[2K" + progress.line(), stderr) }
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        let results = await work.value
        watcher.cancel()
        await watcher.value
        if showsProgress { fputs("\r\u{1B}[2K" + progress.line() + "\n", stderr) }
        return results
    }

    /// One line: how many files came from where, and what is left for pacman.
    static func summary(_ results: [TransactionPrefetch.FileResult], cached: Int) -> String {
        let served = results.compactMap(\.outcome)
        let bytes = served.reduce(Int64(0)) { $0 + $1.bytes - $1.resumedFrom }
        let fromIPFS = served.filter { $0.kind.isIPFS }.count
        var text = ":: ipfs-xfer: \(served.count) files (\(ByteCount.format(bytes))) fetched, "
            + "\(fromIPFS) from IPFS, \(served.count - fromIPFS) from mirrors"
        if cached > 0 { text += "; \(cached) already cached" }
        let failed = results.filter { $0.outcome == nil }
        if !failed.isEmpty {
            text += "; left for pacman: " + failed.map { "\($0.item.fileName) (\($0.failure ?? "failed"))" }
                .joined(separator: ", ")
        }
        return text
    }
}

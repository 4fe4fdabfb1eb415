import Glibc

/// `ipfs-xfer sync -y`: the sync databases refreshed by ipfs-xfer itself, all at once, instead
/// of by pacman one file at a time through XferCommand.
///
/// pacman sleeps 2 s after every failed XferCommand call, and Arch's unsigned databases make
/// every `<repo>.db.sig` of a `-Sy` fail (`SigLevel = Required DatabaseOptional`): 4–6 s a
/// refresh. This does what pacman's `-Sy` does, with pacman's rules, and pacman then runs
/// without `-y`:
/// - it holds pacman's lock (`<DBPath>/db.lck`) while it works, and refuses to start when
///   another pacman holds it;
/// - each repo's `<repo>.db` comes through the usual fetch (IPFS with the freshness guard, the
///   mirrors), is checked complete, and replaces `<DBPath>/sync/<repo>.db` atomically, unless
///   it is older than the one in place (its newest entry; a mirror that went back in time) or
///   the same;
/// - its `.sig` is fetched when the repo's SigLevel asks for database signatures: a missing
///   optional one removes a stale `.sig` (which pacman would check the new db against), a
///   missing required one fails the repo, as in pacman.
struct DatabaseRefresh: Sendable {
    /// Why the refresh could not run at all.
    enum Failure: Error, CustomStringConvertible, Equatable {
        case locked(String)
        case noServer
        case system(String)

        var description: String {
            switch self {
            case .locked(let path):
                "unable to lock database (\(path) exists: is pacman running? If not, remove it)"
            case .noServer: "no Server in the mirrorlists to refresh the databases from"
            case .system(let message): message
            }
        }
    }

    /// What became of one repo's database.
    enum Outcome: Sendable, Equatable {
        case updated(source: String)
        case upToDate
        /// The database served was older than the one in place, which was kept.
        case keptNewer
        case failed(String)
    }

    let config: XferConfig
    let pacman: PacmanConfig
    /// `-yy`: replace even an identical database.
    let force: Bool
    let userAgent: String?
    let warn: @Sendable (String) -> Void

    /// Refreshes every repo's database at once; the outcome per repo, in pacman.conf's order.
    func run() async throws(Failure) -> [(repo: String, outcome: Outcome)] {
        guard let server = Mirrorlist(files: config.mirrorlists).servers.first else { throw .noServer }
        let sync = pacman.dbPath + "sync"
        if !FileSystem.isDirectory(sync) {
            do { try FileSystem.makeDirectories(sync) } catch { throw .system("\(error)") }
        }
        let lock = pacman.dbPath + "db.lck"
        let fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o000)
        guard fd >= 0 else {
            if errno == EEXIST { throw .locked(lock) }
            throw .system("\(SystemError("create \(lock)"))")
        }
        _ = try? FileSystem.writeAll(fd, Array("\(getpid())\n".utf8), path: lock)
        close(fd)
        defer { unlink(lock) }
        let repos = pacman.repos
        let outcomes = await withTaskGroup(of: (Int, Outcome).self) { group in
            for (index, repo) in repos.enumerated() {
                let url = server.url(repo: repo, arch: pacman.architecture, file: "\(repo).db")
                group.addTask { (index, await refresh(repo: repo, url: url, into: sync)) }
            }
            var outcomes = [Outcome](repeating: .upToDate, count: repos.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
        return Array(zip(repos, outcomes)).map { (repo: $0.0, outcome: $0.1) }
    }

    /// One repo: its database, then its signature as the SigLevel asks.
    private func refresh(repo: String, url: String, into sync: String) async -> Outcome {
        let target = "\(sync)/\(repo).db"
        let part = target + ".part"
        let fetched: FetchJob.Outcome
        do {
            fetched = try await job(url: url, output: part).run()
        } catch {
            return .failed("\(error)")
        }
        let outcome: Outcome
        if !force, FileSystem.exists(target), (try? FileSystem.readBytes(target)) == (try? FileSystem.readBytes(part)) {
            unlink(part)
            return .upToDate  // as pacman after a 304: its signature stays as it is
        } else if let old = try? SyncDatabase(path: target).newestEntryTime(),
                  let new = try? SyncDatabase(path: part).newestEntryTime(), new < old {
            unlink(part)
            warn("\(repo).db from \(fetched.source) is older than the one in place; kept the one in place")
            return .keptNewer
        } else {
            chmod(part, 0o644)
            guard rename(part, target) == 0 else {
                unlink(part)
                return .failed("\(SystemError("rename \(part)"))")
            }
            outcome = .updated(source: fetched.source)
        }
        let signature = pacman.databaseSignature(repo: repo)
        guard signature != .never else { return outcome }
        let signaturePart = target + ".sig.part"
        do {
            _ = try await job(url: url + ".sig", output: signaturePart).run()
            chmod(signaturePart, 0o644)
            guard rename(signaturePart, target + ".sig") == 0 else { return .failed("\(SystemError("rename \(signaturePart)"))") }
        } catch FetchError.noSignature where signature == .optional {
            unlink(target + ".sig")  // a stale one would be checked against the new database
        } catch {
            unlink(signaturePart)
            return .failed("\(repo).db.sig: \(error)")
        }
        return outcome
    }

    private func job(url: String, output: String) -> FetchJob {
        var job = FetchJob(url: url, output: output, config: config, userAgent: userAgent, showsProgress: false, warn: warn)
        job.warnings = TransactionWarnings(.thisProcess)
        return job
    }
}

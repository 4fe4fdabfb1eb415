import CForkReader
import Glibc

/// What `ipfs-xfer seed` does as the PostTransaction hook: queue the transaction's packages and
/// leave the work to a detached worker, so pacman, which waits for the hook while holding its
/// database lock, is back at once whatever kubo is doing.
public struct SeedHook: Sendable {
    /// Why the hook could not queue anything.
    public enum Failure: Error, CustomStringConvertible {
        case noStateDir(String, SystemError)
        case cannotQueue(SystemError)
        case cannotStartWorker(String)

        public var description: String {
            switch self {
            case .noStateDir(let path, let error): "StateDir \(path) is not usable (\(error)); nothing is seeded"
            case .cannotQueue(let error): "cannot queue files for seeding: \(error)"
            case .cannotStartWorker(let reason): "cannot start the seeding worker: \(reason)"
            }
        }
    }

    public let config: XferConfig
    /// The config file to hand the worker, when one was named.
    public let configPath: String?

    public init(config: XferConfig, configPath: String?) {
        self.config = config
        self.configPath = configPath
    }

    /// Queues the cached files of the packages `names` and starts the worker; returns the
    /// number of files queued and the names with no cached file.
    public func run(names: [String]) throws(Failure) -> (queued: Int, missing: [String]) {
        let state: StateDirectory
        do {
            state = try StateDirectory(path: config.stateDir)
        } catch {
            throw .noStateDir(config.stateDir, error)
        }
        let (targets, missing) = CacheLookup(pacman: PacmanConfig(path: config.pacmanConfig), state: state)
            .targets(for: names, now: Int64(time(nil)))
        do {
            try SeedQueue(state: state).add(targets)
        } catch {
            throw .cannotQueue(error)
        }
        try startWorker(log: state.path + "/seed.log")
        return (targets.count, missing)
    }

    /// Starts `ipfs-xfer seed --work` detached, its output appended to `log`.
    public func startWorker(log: String) throws(Failure) {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw .cannotStartWorker("cannot find its own executable") }
        let executable = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let arguments = [executable, "seed", "--work"] + (configPath.map { ["--config", $0] } ?? [])
        guard ChildProcess.withCStrings(arguments, { xfer_spawn_detached($0, log) }) == 0 else {
            throw .cannotStartWorker(String(cString: strerror(errno)))
        }
    }
}

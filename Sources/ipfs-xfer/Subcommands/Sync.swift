import ArgumentParser
@preconcurrency import Glibc
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer sync [options] PACMAN_ARGUMENTS…`: a transaction's downloads in parallel, then pacman.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pacman (-S…) after fetching all of its downloads in parallel.",
            discussion: """
                Example: ipfs-xfer sync -Syu. The databases are refreshed first (through XferCommand), \
                then every package (and .sig) of the transaction is fetched into CacheDir several at \
                a time, verified, and pacman runs with the same arguments minus the refresh already \
                done. Files that could not be fetched are left to pacman. Options of ipfs-xfer come \
                before pacman's.
                """)

        @Option(name: .customLong("xfer-config"), help: "ipfs-xfer's config file (default: /etc/ipfs-xfer.conf when it exists).")
        var xferConfig: String?

        @Option(help: "How many files to fetch at once (default: ParallelDownloads, 8).")
        var parallel: Int?

        @Option(help: "The pacman program.")
        var pacman = "pacman"

        @Argument(parsing: .captureForPassthrough, help: "pacman's arguments, e.g. -Syu or -S PACKAGE…")
        var pacmanArguments: [String] = []

        func run() async throws {
            throw ExitCode(await Self.execute(
                xferConfig: xferConfig, parallel: parallel, pacman: pacman, arguments: pacmanArguments))
        }

        /// Recognises `sync [--xfer-config F] [--parallel N] [--pacman P] PACMAN_ARGUMENTS…` without
        /// argument-parser, which would read pacman's short options (`-Syu`) as its own.
        static func call(_ arguments: [String]) -> (xferConfig: String?, parallel: Int?, pacman: String, rest: [String])? {
            guard arguments.first == "sync" else { return nil }
            var rest = arguments.dropFirst()
            var xferConfig: String?
            var parallel: Int?
            var pacman = "pacman"
            while let option = rest.first, ["--xfer-config", "--parallel", "--pacman"].contains(option) {
                guard rest.count >= 2 else { return nil }
                let value = rest[rest.startIndex + 1]
                switch option {
                case "--xfer-config": xferConfig = value
                case "--parallel":
                    guard let count = Int(value), count > 0 else { return nil }
                    parallel = count
                default: pacman = value
                }
                rest = rest.dropFirst(2)
            }
            guard let first = rest.first, !["--help", "-h", "--version"].contains(first) else { return nil }
            return (xferConfig, parallel, pacman, Array(rest))
        }

        /// Runs the sync and then pacman (replacing this process); returns an exit status when
        /// pacman is not run.
        static func execute(xferConfig: String?, parallel: Int?, pacman: String, arguments: [String]) async -> Int32 {
            Interrupts.catchSignals()
            do {
                let settings = try XferConfig.load(path: xferConfig)
                let sync = PacmanSync(
                    config: settings, pacman: pacman, arguments: arguments,
                    parallel: parallel ?? settings.parallelDownloads,
                    userAgent: "ipfs-xfer/0.1.0", showsProgress: ProgressLine.isEnabled,
                    say: { print($0) }, warn: { Diagnostics.warn($0) })
                switch try await sync.run(interrupted: { Interrupts.caught }) {
                case .exit(let status):
                    return status
                case .runPacman(let argv):
                    Diagnostics.error(ChildProcess.exec(argv))
                    return 1
                }
            } catch {
                Diagnostics.error(error)
                return 1
            }
        }
    }
}

import ArgumentParser
@preconcurrency import Glibc
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer [fetch] [--config FILE] URL OUTPUT`: what pacman runs for each file.
    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download URL into OUTPUT, verified (pacman's %u and %o).")

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Argument(help: "The URL pacman asks for (%u).")
        var url: String

        @Argument(help: "Where pacman wants the file (%o); written only when complete and verified.")
        var output: String

        func run() async throws {
            do {
                let settings = try XferConfig.load(path: config)
                let job = FetchJob(
                    url: url, output: output, config: settings,
                    userAgent: getenv("HTTP_USER_AGENT").map { String(cString: $0) } ?? "ipfs-xfer/0.1.0",
                    showsProgress: ProgressLine.isEnabled,
                    warn: { Diagnostics.warn($0) })
                _ = try await job.run()
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

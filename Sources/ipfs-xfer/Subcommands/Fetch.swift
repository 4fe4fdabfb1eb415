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
            guard await Self.execute(config: config, url: url, output: output) else { throw ExitCode.failure }
        }

        /// Runs the job; false after printing the one-line error.
        static func execute(config: String?, url: String, output: String) async -> Bool {
            do {
                let settings = try XferConfig.load(path: config)
                var job = FetchJob(
                    url: url, output: output, config: settings,
                    userAgent: getenv("HTTP_USER_AGENT").map { String(cString: $0) } ?? "ipfs-xfer/0.1.0",
                    showsProgress: ProgressLine.isEnabled,
                    warn: { Diagnostics.warn($0) })
                job.leavesPartialOnSignal = true
                _ = try await job.run()
                return true
            } catch FetchError.noSignature {
                return false  // a missing optional signature: a failed call, quietly, as pacman's own downloader
            } catch {
                Diagnostics.error(error)
                return false
            }
        }

        /// Recognises pacman's own call, `[--config FILE] URL OUTPUT`, without argument-parser.
        ///
        /// pacman starts ipfs-xfer once per file, hundreds of times a transaction, and parsing by
        /// reflection costs about 1.5 ms of each start. Anything else (other subcommands, `--help`,
        /// a malformed call) goes through argument-parser as usual.
        static func pacmanCall(_ arguments: [String]) -> (config: String?, url: String, output: String)? {
            var rest = arguments[...]
            var config: String?
            if rest.first == "fetch" { rest = rest.dropFirst() }
            if rest.first == "--config", rest.count == 4 {
                config = rest[rest.startIndex + 1]
                rest = rest.dropFirst(2)
            } else if let first = rest.first, first.hasPrefix("--config="), rest.count == 3 {
                config = String(first.dropFirst("--config=".count))
                rest = rest.dropFirst()
            }
            guard rest.count == 2, let url = rest.first, let output = rest.last,
                  url.utf8.contains(UInt8(ascii: ":")), !url.hasPrefix("-"), !output.hasPrefix("-"),
                  config?.isEmpty != true
            else { return nil }
            return (config, url, output)
        }
    }
}

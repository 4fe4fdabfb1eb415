import ArgumentParser
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer stats`: bytes per source, and seeding.
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show where downloads came from (IPFS or the mirrors) and what was seeded.")

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Option(help: "Also write the figures as a node-exporter textfile (replaced atomically).")
        var prometheus: String?

        func run() throws {
            do {
                let settings = try XferConfig.load(path: config)
                let stats = TransferStats(state: try StateDirectory(path: settings.stateDir))
                print(stats.text, terminator: "")
                if let prometheus { try FileSystem.writeAtomically(prometheus, stats.prometheus) }
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

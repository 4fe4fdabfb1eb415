import ArgumentParser
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer publish MIRROR_DIR`: the mirror operator's job, mirror → IPFS → IPNS.
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish an rsync'd mirror to IPFS (incrementally) and its root to IPNS.",
            discussion: """
            Builds the mirror's DAG with kubo's exact CIDs, hashing only what changed since the last run, \
            sends only the new blocks to kubo (API in the config) as one CAR, moves the pin, publishes the \
            IPNS name and prints the root, the name and the DNSLink record to set. Does nothing when the \
            mirror's lastupdate has not changed (unless --force).
            """)

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Option(help: "The IPNS key to publish under.")
        var key = "self"

        @OptionGroup var importOptions: ImportOptions

        @Option(name: .customLong("exclude"), help: "Leave out a path: 'dir/' for a directory, else a glob (repeatable).")
        var excludes: [String] = []

        @Option(help: "How many roots stay pinned, the new one included.")
        var keep = 2

        @Option(help: "The IPNS record's lifetime (kubo duration).")
        var lifetime = "48h"

        @Option(help: "The IPNS record's TTL (kubo duration).")
        var ttl = "5m"

        @Option(help: "The state file (default: StateDir/publish-<mirror path>).")
        var state: String?

        @Flag(help: "Compute the root and report, without kubo and without saving state.")
        var dryRun = false

        @Flag(help: "Run even when lastupdate has not changed.")
        var force = false

        @Argument(help: "The mirror's top directory (where lastupdate is).")
        var mirror: String

        func run() async throws {
            do {
                let settings = try XferConfig.load(path: config)
                let directory = mirror.count > 1 && mirror.hasSuffix("/") ? String(mirror.dropLast()) : mirror
                let statePath = try state ?? {
                    let stateDir = try StateDirectory(path: settings.stateDir)
                    return stateDir.path + "/publish-" + directory.split(separator: "/").joined(separator: "_")
                }()
                var options = MirrorPublisher.Options(mirror: directory, statePath: statePath)
                options.excludes = excludes
                options.key = key
                options.parameters = importOptions.parameters
                options.keep = keep
                options.lifetime = lifetime
                options.ttl = ttl
                options.dryRun = dryRun
                options.force = force
                let rpc = settings.api.map { KuboRPC(base: $0, timeout: 120, authorization: settings.apiAuthorization) }
                let report = try await MirrorPublisher(options: options, rpc: rpc) { Diagnostics.warn($0) }.run()
                print(Self.describe(report), terminator: "")
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }

        static func describe(_ report: MirrorPublisher.Report) -> String {
            var lines: [String] = []
            if let root = report.root { lines.append("root: /ipfs/\(root)") }
            if report.skipped {
                lines.append("lastupdate has not changed: nothing to publish")
                return lines.joined(separator: "\n") + "\n"
            }
            if let name = report.name {
                lines.append("name: /ipns/\(name)")
                lines.append("dnslink: _dnslink.<your domain> TXT \"dnslink=/ipns/\(name)\"")
            }
            lines.append("files: \(report.filesHashed) hashed (\(report.bytesHashed) bytes), \(report.filesReused) reused; "
                + "directories: \(report.directoriesBuilt) built, \(report.directoriesReused) reused; "
                + "sent: \(report.bytesSent) bytes")
            lines.append("time: \((report.seconds * 100).rounded() / 100) s, of which kubo \((report.kuboSeconds * 100).rounded() / 100) s")
            return lines.joined(separator: "\n") + "\n"
        }
    }
}

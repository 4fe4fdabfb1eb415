import ArgumentParser
@preconcurrency import Glibc
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer seed`: the alpm hook that puts downloaded packages into the local kubo node.
    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seed pacman's cached packages into the local kubo node under the mirror's CIDs.",
            discussion: """
            As the PostTransaction hook (hooks/ipfs-xfer-seed.hook), package names come on stdin: their \
            cached files are queued and a detached worker seeds them and then unpins what left the \
            cache, so pacman is not held up. --retry does that now, in the foreground; --prune only \
            unpins.
            """)

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Flag(help: "Work through the queue and unpin what left the cache now, in the foreground.")
        var retry = false

        @Flag(help: "Unpin the seeded files that are no longer in pacman's cache.")
        var prune = false

        @Flag(help: .hidden)
        var work = false

        func run() async throws {
            do {
                let settings = try XferConfig.load(path: config)
                if retry || work || prune {
                    let state = try StateDirectory(path: settings.stateDir)
                    let seeder = Seeder(config: settings, state: state) { message in
                        print(message)
                        fflush(stdout)
                    }
                    if !prune {
                        let report = await seeder.run(now: Int64(time(nil)))
                        print("seeded \(report.seeded.count), dropped \(report.dropped.count), waiting \(report.pending)")
                    }
                    print("unpinned \(await seeder.prune().count)")
                    return
                }
                var names: [String] = []
                while let line = readLine() {
                    names += line.split(whereSeparator: \.isWhitespace).map(String.init)
                }
                let (queued, missing) = try SeedHook(config: settings, configPath: config).run(names: names)
                print("ipfs-xfer: seeding \(queued) files in the background"
                    + (missing.isEmpty ? "" : " (not in the cache: \(missing.joined(separator: " ")))"))
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

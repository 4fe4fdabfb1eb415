import ArgumentParser
import Glibc

/// The `ipfs-xfer` command: pacman's XferCommand by default, plus tools around it.
@main
struct IPFSXferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipfs-xfer",
        abstract: "pacman's downloader over IPFS, with silent fallback to the HTTP mirrors.",
        discussion: "pacman.conf: XferCommand = /usr/bin/ipfs-xfer %u %o",
        version: "0.1.0",
        subcommands: [Fetch.self, Config.self, CIDCommand.self, CARCommand.self, IPNSCommand.self, Resolve.self, Seed.self, Stats.self, Publish.self, Sync.self, Serve.self],
        defaultSubcommand: Fetch.self
    )

    /// pacman's per-file call takes a direct path; everything else is parsed by argument-parser.
    static func main() async {
        if let call = Fetch.pacmanCall(Array(CommandLine.arguments.dropFirst())) {
            let succeeded = await Fetch.execute(config: call.config, url: call.url, output: call.output)
            // Every file is complete on disk (plain write calls) and stderr is unbuffered, so the
            // libraries' exit handlers (OpenSSL's cleanup, ~0.4 ms) are skipped: pacman is waiting.
            fflush(nil)
            _exit(succeeded ? 0 : 1)
        }
        if let call = Sync.call(Array(CommandLine.arguments.dropFirst())) {
            Glibc.exit(await Sync.execute(
                xferConfig: call.xferConfig, parallel: call.parallel, pacman: call.pacman, arguments: call.rest))
        }
        await Self.main(nil)
    }
}

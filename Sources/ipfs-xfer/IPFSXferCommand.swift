import ArgumentParser
import CurlTransfer
import Dispatch
import Glibc
import XferCore

/// The `ipfs-xfer` command: pacman's XferCommand by default, plus tools around it.
struct IPFSXferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipfs-xfer",
        abstract: "pacman's downloader over IPFS, with silent fallback to the HTTP mirrors.",
        discussion: "pacman.conf: XferCommand = /usr/bin/ipfs-xfer %u %o",
        version: "0.1.0",
        subcommands: [Fetch.self, Config.self, CIDCommand.self, CARCommand.self, IPNSCommand.self, Resolve.self, Seed.self, Stats.self, Publish.self, Sync.self, Serve.self],
        defaultSubcommand: Fetch.self
    )
}

/// The process's entry point: a synchronous `main`, so that pacman's per-file call does not
/// start Swift concurrency's thread pool before it can begin.
@main
enum Launcher {
    /// pacman's per-file call takes a direct path on the main thread; everything else is parsed
    /// by argument-parser and runs as under `async` main.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let call = IPFSXferCommand.Fetch.pacmanCall(arguments) {
            CurlMulti.prepareInBackground()
            let succeeded = CallingThreadExecutor.run {
                await IPFSXferCommand.Fetch.execute(config: call.config, url: call.url, output: call.output)
            }
            // Every file is complete on disk (plain write calls) and stderr is unbuffered, so the
            // libraries' exit handlers (OpenSSL's cleanup, ~0.4 ms) are skipped: pacman is waiting.
            fflush(nil)
            _exit(succeeded ? 0 : 1)
        }
        Task {
            if let call = IPFSXferCommand.Sync.call(arguments) {
                Glibc.exit(await IPFSXferCommand.Sync.execute(
                    xferConfig: call.xferConfig, parallel: call.parallel, pacman: call.pacman, arguments: call.rest))
            }
            await IPFSXferCommand.main(nil)
            Glibc.exit(0)
        }
        dispatchMain()
    }
}

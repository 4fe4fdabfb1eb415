import ArgumentParser

/// The `ipfs-xfer` command: pacman's XferCommand by default, plus tools around it.
@main
struct IPFSXferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipfs-xfer",
        abstract: "pacman's downloader over IPFS, with silent fallback to the HTTP mirrors.",
        discussion: "pacman.conf: XferCommand = /usr/bin/ipfs-xfer %u %o",
        version: "0.1.0",
        subcommands: [Fetch.self, Config.self],
        defaultSubcommand: Fetch.self
    )
}

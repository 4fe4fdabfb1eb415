import ArgumentParser
@preconcurrency import Glibc
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer serve`: a local HTTP server that answers pacman's requests from IPFS.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve repo files to pacman over HTTP from IPFS, verified (a local CacheServer).",
            discussion: """
                pacman.conf, in each repo before the mirrors: CacheServer = http://127.0.0.1:7878/$repo/os/$arch \
                (pacman ≥ 6.1), or Server = … as the first server line for pacman 6.0. A file IPFS \
                cannot deliver verified within ServeTimeout is answered 404, and pacman moves on to its \
                mirrors. With systemd socket activation (contrib/ipfs-xfer-serve.socket) the socket \
                comes from systemd and --listen is ignored.
                """)

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Option(help: "The address and port to listen on.")
        var listen = "127.0.0.1:7878"

        func run() async throws {
            do {
                let settings = try XferConfig.load(path: config)
                let socket = try CacheServer.activatedSocket() ?? CacheServer.listen(on: listen)
                signal(SIGPIPE, SIG_IGN)  // a client that goes away mid-file is not a reason to stop
                let server = try CacheServer(
                    socket: socket, config: settings, userAgent: "ipfs-xfer/0.1.0",
                    log: { message in fputs("ipfs-xfer serve: \(message)\n", stderr) })
                fputs("ipfs-xfer serve: listening (\(CacheServer.activatedSocket() == nil ? listen : "socket from systemd"))\n", stderr)
                try await server.run()
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

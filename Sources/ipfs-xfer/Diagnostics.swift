@preconcurrency import Glibc

/// One-line messages on stderr, prefixed with the tool's name, as pacman shows them inline.
enum Diagnostics {
    static func error(_ error: any Error) {
        fputs("ipfs-xfer: error: \(error)\n", stderr)
    }

    static func warn(_ message: String) {
        fputs("ipfs-xfer: warning: \(message)\n", stderr)
    }
}

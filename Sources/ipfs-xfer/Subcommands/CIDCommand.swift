import ArgumentParser
import IPFSData

extension IPFSXferCommand {
    /// `ipfs-xfer cid PATH`: the CID `ipfs add --only-hash -Q -r` gives, computed locally.
    struct CIDCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cid",
            abstract: "Print the CID kubo's `ipfs add --only-hash -Q -r` gives a file or directory.")

        @OptionGroup var options: ImportOptions

        @Argument(help: "A file, a directory, or - for standard input.")
        var path: String

        func run() async throws {
            do {
                let root = try await TreeImporter(parameters: options.parameters).importPath(path)
                print(root.cid)
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

import ArgumentParser
import IPFSData

extension IPFSXferCommand {
    /// `ipfs-xfer cid PATH`: the CID `ipfs add --only-hash -Q -r` gives, computed locally.
    struct CIDCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cid",
            abstract: "Print the CID kubo's `ipfs add --only-hash -Q -r` gives a file or directory.")

        @Option(help: "Import profile: default, unixfs-v0-2015 (legacy-cid-v0) or unixfs-v1-2025.")
        var profile = "default"

        @Option(name: .customLong("cid-version"), help: "CID version (1 implies --raw-leaves unless a profile or flag says otherwise).")
        var cidVersion: Int?

        @Flag(name: .customLong("raw-leaves"), inversion: .prefixedNo, help: "Store file chunks as raw blocks.")
        var rawLeaves: Bool?

        @Option(help: "Chunker, kubo style: size-<bytes>.")
        var chunker: String?

        @Flag(help: "Include files and directories whose names start with a dot.")
        var hidden = false

        @Argument(help: "A file, a directory, or - for standard input.")
        var path: String

        func validate() throws {
            guard ImportParameters.profiles[profile] != nil else {
                throw ValidationError("unknown profile '\(profile)' (known: \(ImportParameters.profiles.keys.sorted().joined(separator: ", ")))")
            }
            if let cidVersion, cidVersion != 0 && cidVersion != 1 {
                throw ValidationError("--cid-version must be 0 or 1")
            }
            if let chunker {
                guard chunker.hasPrefix("size-"), let size = Int(chunker.dropFirst(5)), size > 0,
                      size <= ImportParameters.maximumChunkSize
                else {
                    throw ValidationError("--chunker must be size-N with 0 < N <= \(ImportParameters.maximumChunkSize)")
                }
            }
        }

        /// The parameters the options describe, with kubo's rule that CIDv1 implies raw leaves
        /// when nothing else decided.
        var parameters: ImportParameters {
            var parameters = ImportParameters.profiles[profile]!
            if let cidVersion {
                parameters.cidVersion = cidVersion
                if rawLeaves == nil && profile == "default" { parameters.rawLeaves = cidVersion == 1 }
            }
            if let rawLeaves { parameters.rawLeaves = rawLeaves }
            if let chunker, let size = Int(chunker.dropFirst(5)) { parameters.chunkSize = size }
            parameters.includeHidden = hidden
            return parameters
        }

        func run() async throws {
            do {
                let root = try await TreeImporter(parameters: parameters).importPath(path)
                print(root.cid)
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

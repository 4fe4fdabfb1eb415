import ArgumentParser
import IPFSData

/// The import options `cid` and `car create` share, named as `ipfs add` names them.
struct ImportOptions: ParsableArguments {
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

    func validate() throws {
        guard ImportParameters.profiles[profile] != nil else {
            let known = ImportParameters.profiles.keys.sorted().joined(separator: ", ")
            throw ValidationError("unknown profile '\(profile)' (known: \(known))")
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
}

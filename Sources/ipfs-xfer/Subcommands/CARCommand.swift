import ArgumentParser
import Glibc
import IPFSData

extension IPFSXferCommand {
    /// `ipfs-xfer car create|extract`: CARv1 files of imports, and verified extraction from them.
    struct CARCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "car",
            abstract: "Create CAR files of imports, and extract files from CARs with every block verified.",
            subcommands: [Create.self, Extract.self])
    }
}

extension IPFSXferCommand.CARCommand {
    /// `car create PATH -o FILE.car`: the CAR of `ipfs add -r PATH`, root in the header.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the CAR of an import (blocks as `ipfs add -r` makes them).")

        @OptionGroup var options: ImportOptions

        @Option(name: .shortAndLong, help: "The CAR file to write.")
        var output: String

        @Argument(help: "A file or a directory.")
        var path: String

        func run() async throws {
            let parameters = options.parameters
            let temporary = output + ".ipfs-xfer-\(getpid())"
            do {
                let writer = try CARWriter(path: temporary, rootByteCount: Self.rootByteCount(path, parameters))
                let root = try await TreeImporter(parameters: parameters, sink: writer).importPath(path)
                try writer.finish(root: root.cid)
                guard rename(temporary, output) == 0 else {
                    throw CARWriter.WriteError(message: "cannot create \(output): \(String(cString: strerror(errno)))")
                }
                print(root.cid)
            } catch {
                unlink(temporary)
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }

        /// The root's CID length: a single-chunk file under raw leaves is a raw CIDv1 (36 bytes).
        static func rootByteCount(_ path: String, _ parameters: ImportParameters) -> Int {
            var info = stat()
            let singleChunk = stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
                && Int(info.st_size) <= parameters.chunkSize
            return parameters.cidVersion == 1 || (parameters.rawLeaves && singleChunk) ? 36 : 34
        }
    }

    /// `car extract FILE.car /ipfs/<cid>[/path] -o OUT`: every block hashed before a byte is kept.
    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Extract a file or directory from a CAR, verifying every block; nothing is left on failure.")

        @Option(name: .shortAndLong, help: "Where to write the file or directory (must not exist).")
        var output: String

        @Argument(help: "The CAR file.")
        var car: String

        @Argument(help: "/ipfs/<cid>[/path] to extract.")
        var ipfsPath: String

        func run() throws {
            do {
                let parts = ipfsPath.split(separator: "/").map(String.init)
                guard ipfsPath.hasPrefix("/ipfs/"), parts.count >= 2 else {
                    throw ValidationError("the path must be /ipfs/<cid>[/path], not '\(ipfsPath)'")
                }
                guard access(output, F_OK) != 0 else { throw ValidationError("\(output) already exists") }
                let reader = UnixFSReader(source: try CARReader(path: car))
                let target = try reader.resolve(root: try CID(parts[1]), segments: Array(parts.dropFirst(2)))
                try Extractor(reader: reader).extract(target, to: output) { Diagnostics.warn($0) }
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

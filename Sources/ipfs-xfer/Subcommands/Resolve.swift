import ArgumentParser
@preconcurrency import Glibc
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer resolve [URL|NAME]`: resolve the mirror root now and say how.
    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve the mirror root, an /ipns name or a pacman URL, and print where the answer came from.")

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Argument(help: "A pacman URL, /ipns/<name>, <name>, <domain> or /ipfs/<cid> (default: MirrorRoot).")
        var target: String?

        func run() async throws {
            do {
                let settings = try XferConfig.load(path: config)
                let (root, relative) = try Self.target(target, config: settings)
                let now = Int64(time(nil))
                let resolved = try await RootLookup.resolveNow(
                    root, config: settings, userAgent: nil, now: now)
                print(resolved.path + relative)
                print("source: \(resolved.source)")
                if let sequence = resolved.sequence { print("sequence: \(sequence)") }
                if resolved.ttl.isFinite { print("ttl: \(Int(resolved.ttl))s") }
                if let validUntil = resolved.validUntil { print("valid until: \(Self.utc(validUntil))") }
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }

        /// The root to resolve and the file path below it, from the argument.
        static func target(_ text: String?, config: XferConfig) throws -> (MirrorRoot, String) {
            guard let text else {
                guard let root = config.mirrorRoot else { throw ResolveError.noMirrorRoot }
                return (root, "")
            }
            if text.contains("://") {
                guard let root = config.mirrorRoot else { throw ResolveError.noMirrorRoot }
                let mapping = try URLMapper(mirrorlist: Mirrorlist(files: config.mirrorlists), layout: config.layout).map(text)
                guard let file = mapping.file else { throw ResolveError.notARepoFile(text) }
                let relative = config.layout.expand(repo: file.repo, arch: file.arch) + [file.fileName]
                return (root, "/" + relative.joined(separator: "/"))
            }
            return (try MirrorRoot(parsing: text.hasPrefix("/") ? text : "/ipns/" + text), "")
        }

        static func utc(_ seconds: Int64) -> String {
            var time = time_t(seconds)
            var parts = tm()
            gmtime_r(&time, &parts)
            var buffer = [CChar](repeating: 0, count: 32)
            strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Why `resolve` has nothing to resolve.
    enum ResolveError: Error, CustomStringConvertible {
        case noMirrorRoot
        case notARepoFile(String)

        var description: String {
            switch self {
            case .noMirrorRoot: "no MirrorRoot is configured"
            case .notARepoFile(let url): "\(url) is not a repo file under any Server of the mirrorlist"
            }
        }
    }
}

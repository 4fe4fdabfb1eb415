import CurlTransfer
import FoundationEssentials

/// A client of the local kubo node's RPC (`/api/v0/…`), which takes POST only.
public struct KuboRPC: Sendable {
    /// Why a command failed.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unreachable(String, String)
        case refused(String, String)
        case badAnswer(String)

        public var description: String {
            switch self {
            case .unreachable(let command, let reason): "kubo RPC \(command): \(reason)"
            case .refused(let command, let message): "kubo RPC \(command) refused: \(message)"
            case .badAnswer(let command): "kubo RPC \(command) gave an answer that is not understood"
            }
        }
    }

    /// The RPC base URL, such as `http://127.0.0.1:5001`.
    public let base: String
    public let timeout: Double
    /// The `Authorization` header value for kubo's `API.Authorizations`, if one is configured.
    public let authorization: String?

    public init(base: String, timeout: Double, authorization: String? = nil) {
        self.base = base
        self.timeout = timeout
        self.authorization = authorization
    }

    /// The `Authorization` header for a kubo `AuthSecret`: `basic:user:password` or `bearer:token`
    /// (a bare token is a bearer token, as kubo reads it).
    public static func authorizationHeader(secret: String) -> String {
        if secret.hasPrefix("basic:") {
            // kubo's ConvertAuthSecret: user:password is encoded here; anything else is already base64.
            let value = secret.dropFirst("basic:".count)
            return "Basic " + (value.contains(":") ? Base64.encode(Array(value.utf8)) : String(value))
        }
        return "Bearer " + (secret.hasPrefix("bearer:") ? String(secret.dropFirst("bearer:".count)) : secret)
    }

    /// The CID an `/ipfs` path leads to, as the node resolves it.
    public func resolveCID(_ path: String) async throws(Failure) -> String {
        let answer = try await call("resolve", arguments: [path], options: [:])
        guard let resolved = Self.string("Path", in: answer), resolved.hasPrefix("/ipfs/") else {
            throw .badAnswer("resolve")
        }
        return String(resolved.dropFirst("/ipfs/".count))
    }

    /// Imports the blocks of a CAR file (without pinning its roots).
    public func importCAR(path: String) async throws(Failure) {
        try await importCAR(.path(path))
    }

    /// Imports the CAR read from `stream` (a socket or pipe) as it is written, until its writer
    /// closes it; the caller closes `stream` afterwards.
    public func importCAR(stream: Int32) async throws(Failure) {
        try await importCAR(.stream(fd: stream))
    }

    private func importCAR(_ source: MultipartFile.Source) async throws(Failure) {
        // Without pin-roots there is no pin error to report; a failed import is an HTTP error.
        _ = try await call("dag/import", arguments: [], options: ["pin-roots": "false"],
                           file: MultipartFile(field: "file", source: source, fileName: "blocks.car",
                                               contentType: "application/vnd.ipld.car"))
    }

    /// Pins a CID recursively under a name.
    public func pin(_ cid: String, name: String) async throws(Failure) {
        _ = try await call("pin/add", arguments: [cid], options: ["recursive": "true", "name": name])
    }

    /// Moves a recursive pin from one root to the next; `unpin: false` keeps the old one pinned too.
    public func updatePin(from old: String, to new: String, unpin: Bool) async throws(Failure) {
        _ = try await call("pin/update", arguments: [old, new], options: ["unpin": String(unpin)])
    }

    /// Publishes `path` under the IPNS key `key`; returns the name.
    public func publishName(_ path: String, key: String, lifetime: String, ttl: String) async throws(Failure) -> String {
        let answer = try await call("name/publish", arguments: [path], options: [
            "key": key, "lifetime": lifetime, "ttl": ttl, "allow-offline": "true",
        ])
        guard let name = Self.string("Name", in: answer) else { throw .badAnswer("name/publish") }
        return name
    }

    /// Removes a recursive pin.
    public func unpin(_ cid: String) async throws(Failure) {
        _ = try await call("pin/rm", arguments: [cid], options: ["recursive": "true"])
    }

    /// Announces a CID: `provide/once` (kubo 0.42 and later), else the older `routing/provide`.
    public func provide(_ cid: String) async throws(Failure) {
        do {
            _ = try await call("provide/once", arguments: [cid], options: [:])
        } catch .refused {
            _ = try await call("routing/provide", arguments: [cid], options: [:])
        }
    }

    /// Resolves `/ipns/<name>[/path]` all the way to an `/ipfs` path (kubo follows IPNS and DNSLink).
    public func resolve(_ path: String) async throws(Failure) -> String {
        let answer = try await call("name/resolve", arguments: [path], options: ["recursive": "true", "nocache": "true"])
        guard let resolved = Self.string("Path", in: answer), resolved.hasPrefix("/ipfs/") else {
            throw .badAnswer("name/resolve")
        }
        return resolved
    }

    /// The string member `key` of the first JSON object in an answer (kubo streams some as one
    /// object per line) that has one.
    static func string(_ key: String, in answer: String) -> String? {
        for line in answer.split(separator: "\n") {
            if let value = (try? JSONDecoder().decode([String: Member].self, from: Data(line.utf8)))?[key]?.string {
                return value
            }
        }
        return nil
    }

    /// Any JSON value, read for its string, if it is one.
    private struct Member: Decodable {
        let string: String?

        init(from decoder: any Decoder) throws {
            string = try? decoder.singleValueContainer().decode(String.self)
        }
    }

    /// POSTs a command (with a file as its multipart body, when given); returns its JSON answer.
    func call(_ command: String, arguments: [String], options: [String: String], file: MultipartFile? = nil)
        async throws(Failure) -> String {
        let query = (arguments.map { "arg=" + PercentEncoding.encodeQueryValue($0) }
            + options.keys.sorted().map { "\($0)=\(PercentEncoding.encodeQueryValue(options[$0]!))" })
            .joined(separator: "&")
        let request = TransferRequest(
            url: "\(base)/api/v0/\(command)?\(query)", connectTimeout: timeout, stallTimeout: timeout,
            headers: authorization.map { ["Authorization: \($0)"] } ?? [],
            postBody: file == nil ? [] : nil, multipartFile: file)
        let receiver = MemoryReceiver(limit: 1 << 20)
        do {
            _ = try await CurlMulti.shared.perform(request, into: receiver)
        } catch let error as TransferError {
            if case .status = error {
                throw .refused(command, "\(error)")
            }
            throw .unreachable(command, "\(error)")
        } catch {
            throw .unreachable(command, "\(error)")
        }
        return String(decoding: receiver.bytes, as: UTF8.self)
    }
}

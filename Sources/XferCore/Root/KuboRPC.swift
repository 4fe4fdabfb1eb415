import CurlTransfer

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

    public init(base: String, timeout: Double) {
        self.base = base
        self.timeout = timeout
    }

    /// Resolves `/ipns/<name>[/path]` all the way to an `/ipfs` path (kubo follows IPNS and DNSLink).
    public func resolve(_ path: String) async throws(Failure) -> String {
        let answer = try await call("name/resolve", arguments: [path], options: ["recursive": "true", "nocache": "true"])
        guard let resolved = JSONText.string(forKey: "Path", in: answer), resolved.hasPrefix("/ipfs/") else {
            throw .badAnswer("name/resolve")
        }
        return resolved
    }

    /// POSTs a command; returns its JSON answer.
    func call(_ command: String, arguments: [String], options: [String: String]) async throws(Failure) -> String {
        let query = (arguments.map { "arg=" + PercentEncoding.encodeQueryValue($0) }
            + options.keys.sorted().map { "\($0)=\(PercentEncoding.encodeQueryValue(options[$0]!))" })
            .joined(separator: "&")
        let request = TransferRequest(
            url: "\(base)/api/v0/\(command)?\(query)", connectTimeout: timeout, stallTimeout: timeout, postBody: [])
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

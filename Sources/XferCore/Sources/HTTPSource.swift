import CurlTransfer

/// A file at a URL: the local kubo path gateway (`/ipfs/<cid>/…`) or a pacman mirror.
public struct HTTPSource: Source {
    public let kind: SourceKind
    public let url: String
    public let label: String
    public let healthKey: String
    /// The User-Agent to send (pacman exports its own as HTTP_USER_AGENT).
    public let userAgent: String?

    /// A source for `url`; `base` is the server part shown in messages and remembered for health.
    public init(kind: SourceKind, url: String, base: String, userAgent: String?) {
        self.kind = kind
        self.url = url
        self.label = "\(kind.rawValue) \(base)"
        self.healthKey = "\(kind.rawValue) \(base)"
        self.userAgent = userAgent
    }

    public func fetch(into file: DownloadFile, timeouts: Timeouts) async throws {
        let request = TransferRequest(
            url: url, resumeFrom: file.size, connectTimeout: timeouts.connect, stallTimeout: timeouts.stall,
            userAgent: userAgent)
        _ = try await CurlMulti.shared.perform(request, into: file)
    }

    public func fetch(
        range: Range<Int64>, of fileSize: Int64, into receiver: any TransferReceiver, timeouts: Timeouts
    ) async throws {
        // HTTP gets the exact range; other schemes (file://) continue from the first byte to the end.
        let isHTTP = url.hasPrefix("http://") || url.hasPrefix("https://")
        let isWhole = range.lowerBound == 0 && range.upperBound >= fileSize
        let request = TransferRequest(
            url: url, resumeFrom: isHTTP ? 0 : range.lowerBound, connectTimeout: timeouts.connect,
            stallTimeout: timeouts.stall,
            headers: isWhole || !isHTTP ? [] : ["Range: bytes=\(range.lowerBound)-\(range.upperBound - 1)"],
            userAgent: userAgent)
        _ = try await CurlMulti.shared.perform(request, into: receiver)
    }

    /// The `scheme://host[:port]` part of a URL, which names a mirror in health records.
    public static func origin(of url: String) -> String {
        guard let schemeEnd = url.firstRange(ofLiteral: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        return String(url[..<hostEnd])
    }
}

import CResolv
import CurlTransfer

/// Finds a domain's DNSLink: the `dnslink=` TXT record at `_dnslink.<domain>`.
public struct DNSLinkLookup: Sendable {
    /// Where the TXT query goes.
    public enum Transport: Sendable, Equatable {
        /// The resolvers of /etc/resolv.conf.
        case system
        /// One nameserver, such as a local dnsmasq (`DNSServer = 127.0.0.1:5353`).
        case server(address: String, port: Int)
        /// DNS over HTTPS (RFC 8484, a GET with `?dns=`), e.g. `https://dns.example/dns-query`.
        case https(String)
    }

    /// Why a domain has no usable DNSLink.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case noAnswer(String)
        case httpsFailed(String, String)
        case serverFailure(String)
        case malformedAnswer(String)
        case noDNSLink(String)
        case several(String, [String])
        case badValue(String, String)

        public var description: String {
            switch self {
            case .noAnswer(let name): "no DNS answer for \(name)"
            case .httpsFailed(let name, let reason): "DNS over HTTPS for \(name) failed: \(reason)"
            case .serverFailure(let name): "the DNS server failed to answer for \(name)"
            case .malformedAnswer(let name): "a malformed DNS answer for \(name)"
            case .noDNSLink(let name): "\(name) has no dnslink= TXT record"
            case .several(let name, let values): "\(name) has several DNSLinks: \(values.joined(separator: ", "))"
            case .badValue(let name, let value): "\(name) has a DNSLink that is not an /ipfs or /ipns path: \(value)"
            }
        }
    }

    public let transport: Transport
    /// How long one query may take, in seconds.
    public let timeout: Int
    public let userAgent: String?

    public init(transport: Transport, timeout: Int, userAgent: String? = nil) {
        self.transport = transport
        self.timeout = timeout
        self.userAgent = userAgent
    }

    /// The DNSLink of `domain`: `/ipfs/<cid>[/path]` or `/ipns/<name>[/path]`.
    public func resolve(_ domain: String) async throws(Failure) -> String {
        let name = "_dnslink." + domain
        return try Self.dnslink(from: try await txtRecords(name), name: name)
    }

    /// Picks the one DNSLink among a name's TXT records; a bare CID is the legacy `/ipfs/<cid>`.
    static func dnslink(from records: [String], name: String) throws(Failure) -> String {
        var values: [String] = []
        for record in records where record.hasPrefix("dnslink=") {
            var value = String(record.dropFirst("dnslink=".count)).trimmingBlanks()
            if !value.hasPrefix("/") {
                guard !value.isEmpty, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                    throw .badValue(name, value)
                }
                value = "/ipfs/" + value
            }
            guard value.hasPrefix("/ipfs/") || value.hasPrefix("/ipns/") else { throw .badValue(name, value) }
            if !values.contains(value) { values.append(value) }
        }
        guard let value = values.first else { throw .noDNSLink(name) }
        guard values.count == 1 else { throw .several(name, values) }
        return value
    }

    private func txtRecords(_ name: String) async throws(Failure) -> [String] {
        let answer: [UInt8]
        switch transport {
        case .system, .server:
            let transport = transport
            let timeout = timeout
            let result = try? await DedicatedThread.run { () -> [UInt8]? in
                var buffer = [UInt8](repeating: 0, count: 65_535)
                let length: Int32
                if case .server(let address, let port) = transport {
                    length = xfer_txt_query(name, address, Int32(port), Int32(timeout), &buffer, Int32(buffer.count))
                } else {
                    length = xfer_txt_query(name, nil, 0, Int32(timeout), &buffer, Int32(buffer.count))
                }
                return length < 0 ? nil : Array(buffer.prefix(Int(length)))
            }
            guard let bytes = result ?? nil else { throw .noAnswer(name) }
            answer = bytes
        case .https(let url):
            answer = try await httpsAnswer(url: url, name: name)
        }
        var text = [CChar](repeating: 0, count: 65_536)
        let count = xfer_txt_records(answer, Int32(answer.count), &text, Int32(text.count))
        switch count {
        case -2: throw .serverFailure(name)
        case ..<0: throw .malformedAnswer(name)
        default:
            let joined = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return joined.split(separator: "\n").map(String.init)
        }
    }

    private func httpsAnswer(url: String, name: String) async throws(Failure) -> [UInt8] {
        var query = [UInt8](repeating: 0, count: 512)
        let length = xfer_txt_make_query(name, &query, Int32(query.count))
        guard length > 0 else { throw .malformedAnswer(name) }
        let separator = url.contains("?") ? "&" : "?"
        let request = TransferRequest(
            url: url + separator + "dns=" + Base64.encodeURLSafe(query.prefix(Int(length))),
            connectTimeout: Double(timeout), stallTimeout: Double(timeout),
            headers: ["Accept: application/dns-message"], userAgent: userAgent)
        let receiver = MemoryReceiver(limit: 65_535)
        do {
            _ = try await CurlMulti.shared.perform(request, into: receiver)
        } catch {
            throw .httpsFailed(name, "\(error)")
        }
        guard receiver.contentType?.hasPrefix("application/dns-message") ?? false else {
            throw .httpsFailed(name, "the answer is \(receiver.contentType ?? "untyped"), not application/dns-message")
        }
        return receiver.bytes
    }
}

import CurlTransfer
import IPFSData

/// Resolves an `/ipns` MirrorRoot to the `/ipfs` root it names now.
///
/// The local kubo RPC is asked first and trusted. Without it (or when it fails), an IPNS name
/// is resolved from signed records fetched from every gateway (`?format=ipns-record`) and
/// delegated routing endpoint (`/routing/v1/ipns/{name}`) at once; each record is verified
/// (``IPFSData/IPNSRecord``) and the highest sequence wins, but never one lower than a
/// sequence already seen. A domain is resolved through its DNSLink. Answers that are names
/// again are followed, at most ``maximumSteps`` times.
public struct RootResolver: Sendable {
    /// How many IPNS or DNSLink steps a root may take.
    public static let maximumSteps = 8

    /// Why a root could not be resolved.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unresolved(String, [String])
        case tooManySteps(String)
        case rollback(name: String, seen: UInt64, offered: UInt64)
        case badAnswer(String, String)

        public var description: String {
            switch self {
            case .unresolved(let name, let reasons): "cannot resolve \(name): " + reasons.joined(separator: "; ")
            case .tooManySteps(let root): "\(root) takes more than \(RootResolver.maximumSteps) IPNS/DNSLink steps"
            case .rollback(let name, let seen, let offered):
                "\(name): the best record offered has sequence \(offered), lower than \(seen) seen before"
            case .badAnswer(let name, let value): "\(name) resolves to '\(value)', which is not an /ipfs or /ipns path"
            }
        }
    }

    /// A resolution, with the IPNS name whose record gave it (for rollback protection).
    public struct Answer: Sendable, Equatable {
        public var root: ResolvedRoot
        /// The IPNS names whose verified records were used, with their sequences.
        public var sequences: [String: UInt64]
    }

    public let api: String?
    public let gateways: [String]
    public let routingEndpoints: [String]
    public let dns: DNSLinkLookup
    public let timeout: Double
    public let maximumTTL: Double
    public let userAgent: String?

    public init(config: XferConfig, userAgent: String?) {
        self.api = config.api
        self.gateways = config.gateways + config.trustlessGateways
        self.routingEndpoints = config.routingEndpoints
        self.dns = DNSLinkLookup(transport: config.dnsServer, timeout: Int(config.resolveTimeout.rounded(.up)),
                                 userAgent: userAgent)
        self.timeout = config.resolveTimeout
        self.maximumTTL = config.rootCacheTime
        self.userAgent = userAgent
    }

    /// Resolves `root` now; `seen` holds the highest sequence already verified per name.
    public func resolve(_ root: MirrorRoot, seen: [String: UInt64], now: Int64) async throws(Failure) -> Answer {
        if root.namespace == .ipfs {
            return Answer(root: ResolvedRoot(path: root.description, source: "configured", ttl: .infinity, resolvedAt: now),
                          sequences: [:])
        }
        var reasons: [String] = []
        if let api {
            do {
                let path = try await KuboRPC(base: api, timeout: timeout).resolve(root.description)
                return Answer(root: ResolvedRoot(path: path, source: "kubo RPC \(api)", ttl: maximumTTL, resolvedAt: now),
                              sequences: [:])
            } catch {
                reasons.append(error.description)
            }
        }
        var current = root.description
        var sources: [String] = []
        var ttl = maximumTTL
        var sequence: UInt64?
        var validUntil: Int64?
        var sequences: [String: UInt64] = [:]
        for _ in 0..<Self.maximumSteps {
            let segments = current.split(separator: "/").map(String.init)
            guard segments.count >= 2, segments[0] == "ipfs" || segments[0] == "ipns" else {
                throw .badAnswer(root.description, current)
            }
            if segments[0] == "ipfs" {
                let resolved = ResolvedRoot(path: current, source: sources.joined(separator: " → "), sequence: sequence,
                                            ttl: ttl, validUntil: validUntil, resolvedAt: now)
                guard resolved.root != nil else { throw .badAnswer(root.description, current) }
                return Answer(root: resolved, sequences: sequences)
            }
            let name = segments[1]
            let rest = segments.dropFirst(2).map { "/" + $0 }.joined()
            let next: String
            if name.contains(".") {
                do {
                    next = try await dns.resolve(name)
                } catch {
                    throw .unresolved(root.description, reasons + [error.description])
                }
                sources.append("DNSLink \(name)")
            } else {
                let ipnsName: IPNSName
                do {
                    ipnsName = try IPNSName(name)
                } catch {
                    throw .unresolved(root.description, reasons + [error.description])
                }
                let (record, source) = try await bestRecord(for: ipnsName, seen: seen[ipnsName.description], now: now,
                                                           reasons: reasons, root: root.description)
                next = record.value
                sources.append(source)
                ttl = min(ttl, Double(record.ttlNanoseconds) / 1e9)
                sequence = record.sequence
                validUntil = min(validUntil ?? record.validUntil, record.validUntil)
                sequences[ipnsName.description] = record.sequence
            }
            guard next.hasPrefix("/ipfs/") || next.hasPrefix("/ipns/") else { throw .badAnswer(name, next) }
            current = next + rest
        }
        throw .tooManySteps(root.description)
    }

    /// Fetches the name's records from every gateway and routing endpoint at once and keeps the
    /// verified one with the highest sequence.
    private func bestRecord(
        for name: IPNSName, seen: UInt64?, now: Int64, reasons: [String], root: String
    ) async throws(Failure) -> (IPNSRecord, String) {
        let requests = gateways.map { ("gateway \($0)", "\($0)/ipns/\(name)?format=ipns-record") }
            + routingEndpoints.map { ("routing \($0)", "\($0)/routing/v1/ipns/\(name)") }
        let results = await withTaskGroup(of: (String, Result<IPNSRecord, any Error>).self) { group in
            for (label, url) in requests {
                group.addTask { (label, await fetchRecord(url: url, name: name, now: now)) }
            }
            var results: [(String, Result<IPNSRecord, any Error>)] = []
            for await result in group { results.append(result) }
            return results
        }
        var best: (IPNSRecord, String)?
        var failures = reasons
        for (label, result) in results.sorted(by: { $0.0 < $1.0 }) {
            switch result {
            case .success(let record):
                if best == nil || record.sequence > best!.0.sequence { best = (record, label) }
            case .failure(let error):
                failures.append("\(label): \(error)")
            }
        }
        guard let best else {
            throw .unresolved(root, failures.isEmpty ? ["no gateway or RoutingEndpoint to ask for a record"] : failures)
        }
        if let seen, best.0.sequence < seen {
            throw .rollback(name: name.description, seen: seen, offered: best.0.sequence)
        }
        return best
    }

    private func fetchRecord(url: String, name: IPNSName, now: Int64) async -> Result<IPNSRecord, any Error> {
        let request = TransferRequest(
            url: url, connectTimeout: timeout, stallTimeout: timeout,
            headers: ["Accept: application/vnd.ipfs.ipns-record"], userAgent: userAgent)
        let receiver = MemoryReceiver(limit: IPNSRecord.maximumSize)
        do {
            _ = try await CurlMulti.shared.perform(request, into: receiver)
            guard receiver.contentType?.hasPrefix("application/vnd.ipfs.ipns-record") ?? false else {
                return .failure(RecordFetchError.notARecord(receiver.contentType ?? "no Content-Type"))
            }
            return .success(try IPNSRecord.verify(receiver.bytes, for: name, now: now))
        } catch {
            return .failure(error)
        }
    }

    /// A response that is not an IPNS record.
    enum RecordFetchError: Error, CustomStringConvertible {
        case notARecord(String)

        var description: String {
            switch self {
            case .notARecord(let type): "the answer is \(type), not an IPNS record"
            }
        }
    }
}

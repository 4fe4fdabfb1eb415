/// One HTTP/1.x request head, as much of it as `ipfs-xfer serve` needs.
struct HTTPRequest: Sendable, Equatable {
    /// Why a request head was refused (answered 400).
    enum ParseError: Error, Equatable {
        case malformed
    }

    var method: String
    /// The percent-decoded path, without query.
    var path: String
    var range: String?
    /// Whether the client wants the connection kept open after the response.
    var keepAlive: Bool

    /// Parses a head (the bytes up to and excluding the blank line).
    init(head: [UInt8]) throws(ParseError) {
        let lines = head.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0, as: UTF8.self) }
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else { throw .malformed }
        method = String(parts[0])
        let target = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard let decoded = PercentEncoding.decode(target) else { throw .malformed }
        path = decoded
        var keepAlive = parts[2] == "HTTP/1.1"
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...]).trimmingBlanks()
            switch name {
            case "range": range = value
            case "connection":
                if value.lowercased() == "close" { keepAlive = false }
                if value.lowercased() == "keep-alive" { keepAlive = true }
            default: break
            }
        }
        self.keepAlive = keepAlive
    }

    /// What a `Range` header asks of a file of `size` bytes.
    enum RangeAnswer: Equatable {
        /// No (usable) range: the whole file, 200.
        case whole
        /// The bytes `lower...upper`, 206.
        case part(lower: Int64, upper: Int64)
        /// A range that starts past the end, 416.
        case unsatisfiable
    }

    /// Interprets one `bytes=` range (RFC 9110 §14.1.2); several ranges or other units are
    /// answered with the whole file, as the RFC allows.
    static func range(_ header: String?, size: Int64) -> RangeAnswer {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst("bytes=".count)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return .whole }
            return size == 0 ? .unsatisfiable : .part(lower: max(size - suffix, 0), upper: size - 1)
        }
        guard let lower = Int64(first) else { return .whole }
        guard lower < size else { return .unsatisfiable }
        guard !last.isEmpty else { return .part(lower: lower, upper: size - 1) }
        guard let upper = Int64(last), upper >= lower else { return .whole }
        return .part(lower: lower, upper: min(upper, size - 1))
    }
}

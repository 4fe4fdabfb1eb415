/// A streaming reader of the tar archives inside sync dbs (ustar, pax and GNU long names).
///
/// Bytes are pushed in as they are decompressed; every header's checksum is checked, and each
/// entry's body is collected only when `wants` asks for it (dbs are mostly `desc` files of a few
/// hundred bytes; `.files` dbs add bigger `files` lists that validation only skips over).
final class TarReader {
    /// Why the archive is not a well-formed tar.
    struct Failure: Error {
        var message: String
    }

    private enum State {
        case header
        case body(name: String, type: UInt8, remaining: Int, padding: Int, collected: [UInt8]?)
        case padding(Int)
        case end
    }

    private let wants: (String) -> Bool
    private let handle: (String, [UInt8]) throws -> Void
    private var state = State.header
    private var header: [UInt8] = []
    private var longName: String?
    /// Regular entries seen so far.
    private(set) var entryCount = 0
    /// The newest modification time of an entry so far (Unix seconds): repo-add writes each
    /// package's entry when it is added, so a later database has a newer one (or the same).
    private(set) var newestTime = 0

    /// `wants` chooses the entries whose bodies `handle` receives (paths without a leading `./`).
    init(wants: @escaping (String) -> Bool, handle: @escaping (String, [UInt8]) throws -> Void) {
        self.wants = wants
        self.handle = handle
    }

    /// True when the bytes so far end between entries (an archive may stop here).
    var isAtBoundary: Bool {
        switch state {
        case .end: true
        case .header: header.isEmpty
        default: false
        }
    }

    /// Consumes the next bytes of the archive.
    func consume(_ bytes: UnsafeRawBufferPointer) throws {
        var index = 0
        while index < bytes.count {
            switch state {
            case .end:
                return
            case .header:
                let take = min(512 - header.count, bytes.count - index)
                header += bytes[index..<index + take]
                index += take
                if header.count == 512 {
                    try startEntry()
                    header.removeAll(keepingCapacity: true)
                }
            case .padding(let left):
                let take = min(left, bytes.count - index)
                index += take
                state = left == take ? .header : .padding(left - take)
            case .body(let name, let type, let remaining, let padding, var collected):
                let take = min(remaining, bytes.count - index)
                collected?.append(contentsOf: bytes[index..<index + take])
                index += take
                if take == remaining {
                    state = padding > 0 ? .padding(padding) : .header
                    try finishEntry(name: name, type: type, body: collected)
                } else {
                    state = .body(name: name, type: type, remaining: remaining - take, padding: padding, collected: collected)
                }
            }
        }
    }

    private func startEntry() throws {
        if header.allSatisfy({ $0 == 0 }) {
            state = .end
            return
        }
        guard let checksum = Self.number(header[148..<156]),
              checksum == header.enumerated().reduce(0, { sum, item in
                  sum + ((148..<156).contains(item.offset) ? 0x20 : Int(item.element))
              })
        else { throw Failure(message: "bad tar header checksum") }
        guard let size = Self.number(header[124..<136]), size >= 0 else { throw Failure(message: "bad tar entry size") }
        let type = header[156]
        var name = longName ?? Self.text(header[0..<100])
        if longName == nil, header[257..<262].elementsEqual("ustar".utf8) {
            let prefix = Self.text(header[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        longName = nil
        if name.hasPrefix("./") { name.removeFirst(2) }
        let isMeta = type == UInt8(ascii: "x") || type == UInt8(ascii: "L")
        if !isMeta, let time = Self.number(header[136..<148]), time > newestTime { newestTime = time }
        let collect = isMeta || ((type == UInt8(ascii: "0") || type == 0) && wants(name))
        let padding = (512 - size % 512) % 512
        if size == 0 {
            try finishEntry(name: name, type: type, body: collect ? [] : nil)
        } else {
            state = .body(name: name, type: type, remaining: size, padding: padding, collected: collect ? [] : nil)
        }
    }

    private func finishEntry(name: String, type: UInt8, body: [UInt8]?) throws {
        switch type {
        case UInt8(ascii: "x"):
            longName = Self.paxPath(body ?? [])
        case UInt8(ascii: "L"):
            longName = Self.text(body ?? [])
        case UInt8(ascii: "0"), 0:
            entryCount += 1
            if let body { try handle(name, body) }
        default:
            break  // directories, links, global pax headers
        }
    }

    /// A NUL-terminated field as text.
    private static func text(_ field: some Collection<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// An octal field (or GNU base-256 for large values).
    private static func number(_ field: ArraySlice<UInt8>) -> Int? {
        if let first = field.first, first & 0x80 != 0 {
            return field.dropFirst().reduce(Int(first & 0x7F)) { $0 << 8 | Int($1) }
        }
        let digits = field.prefix { $0 != 0 }.filter { $0 != UInt8(ascii: " ") }
        guard !digits.isEmpty else { return 0 }
        return Int(String(decoding: digits, as: UTF8.self), radix: 8)
    }

    /// The `path` record of a pax extended header (`<length> path=<value>\n`).
    private static func paxPath(_ body: [UInt8]) -> String? {
        for record in String(decoding: body, as: UTF8.self).split(separator: "\n") {
            guard let space = record.firstIndex(of: " ") else { continue }
            let pair = record[record.index(after: space)...]
            if pair.hasPrefix("path=") { return String(pair.dropFirst(5)) }
        }
        return nil
    }
}

/// A dag-pb node: links (hash, name, total size) and opaque data, in kubo's canonical encoding.
public struct PBNode: Equatable, Sendable {
    /// One link of a node.
    public struct Link: Equatable, Sendable {
        public var cid: CID
        /// kubo always writes a name, "" for file chunks.
        public var name: String
        /// The size of the whole linked DAG (block plus its own links' Tsizes).
        public var tsize: UInt64

        public init(cid: CID, name: String, tsize: UInt64) {
            self.cid = cid
            self.name = name
            self.tsize = tsize
        }
    }

    /// Why bytes are not a dag-pb node.
    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { "invalid dag-pb: \(message)" }
    }

    public var links: [Link]
    public var data: [UInt8]?

    public init(links: [Link], data: [UInt8]?) {
        self.links = links
        self.data = data
    }

    /// kubo's encoding: every link (Hash, Name, Tsize, always all three), then Data.
    public func encoded() -> [UInt8] {
        // Written straight into one buffer of the right size: a HAMT shard has hundreds of links.
        var sizes: [(cid: Int, name: Int, inner: Int)] = []
        sizes.reserveCapacity(links.count)
        var total = data.map { 1 + Varint.length(UInt64($0.count)) + $0.count } ?? 0
        for link in links {
            let cid = link.cid.byteCount, name = link.name.utf8.count
            let inner = Self.linkBodySize(cidLength: cid, nameLength: name, tsize: link.tsize)
            sizes.append((cid, name, inner))
            total += 1 + Varint.length(UInt64(inner)) + inner
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for (link, size) in zip(links, sizes) {
            bytes.append(0x12)  // field 2 (Links), length-delimited
            Varint.append(UInt64(size.inner), to: &bytes)
            bytes.append(0x0A)  // Hash
            Varint.append(UInt64(size.cid), to: &bytes)
            link.cid.append(to: &bytes)
            bytes.append(0x12)  // Name
            Varint.append(UInt64(size.name), to: &bytes)
            bytes.append(contentsOf: link.name.utf8)
            bytes.append(0x18)  // Tsize, a varint
            Varint.append(link.tsize, to: &bytes)
        }
        if let data {
            bytes.append(0x0A)  // field 1 (Data), length-delimited
            Varint.append(UInt64(data.count), to: &bytes)
            bytes.append(contentsOf: data)
        }
        return bytes
    }

    /// The encoded size of one link entry, as the `block` HAMT estimation counts it.
    public static func encodedLinkSize(cidLength: Int, nameLength: Int, tsize: UInt64) -> Int {
        let inner = linkBodySize(cidLength: cidLength, nameLength: nameLength, tsize: tsize)
        return 1 + Varint.length(UInt64(inner)) + inner
    }

    /// The size of a link's message (Hash, Name, Tsize) without its own field header.
    private static func linkBodySize(cidLength: Int, nameLength: Int, tsize: UInt64) -> Int {
        1 + Varint.length(UInt64(cidLength)) + cidLength + 1 + Varint.length(UInt64(nameLength)) + nameLength
            + 1 + Varint.length(tsize)
    }

    /// Strict decoding: known fields only, no duplicates in a link, Data at most once.
    public init(decoding bytes: ArraySlice<UInt8>) throws(DecodeError) {
        var reader = ProtobufReader(bytes)
        var links: [Link] = []
        var data: [UInt8]?
        try decodingStrictly(DecodeError.init(message:)) {
            while !reader.isAtEnd {
                switch try reader.next() {
                case .bytes(2, let linkBytes):
                    guard data == nil else { throw DecodeError(message: "a link after Data") }
                    links.append(try Self.decodeLink(linkBytes))
                case .bytes(1, let value):
                    guard data == nil else { throw DecodeError(message: "Data twice") }
                    data = Array(value)
                default:
                    throw DecodeError(message: "unknown field")
                }
            }
        }
        self.links = links
        self.data = data
    }

    private static func decodeLink(_ bytes: ArraySlice<UInt8>) throws -> Link {
        var reader = ProtobufReader(bytes)
        var cid: CID?
        var name: String?
        var tsize: UInt64?
        var lastField = 0
        while !reader.isAtEnd {
            let field = try reader.next()
            switch field {
            case .bytes(1, let value) where lastField < 1:
                var offset = 0
                cid = try CID(bytes: value, offset: &offset)
                guard offset == value.count else { throw DecodeError(message: "trailing bytes after a link's CID") }
                lastField = 1
            case .bytes(2, let value) where lastField < 2:
                guard let text = String(validating: value, as: UTF8.self) else {
                    throw DecodeError(message: "link name is not UTF-8")
                }
                name = text
                lastField = 2
            case .varint(3, let value) where lastField < 3:
                tsize = value
                lastField = 3
            default:
                throw DecodeError(message: "bad link field")
            }
        }
        guard let cid else { throw DecodeError(message: "link without a hash") }
        return Link(cid: cid, name: name ?? "", tsize: tsize ?? 0)
    }
}

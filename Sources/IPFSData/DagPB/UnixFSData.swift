/// The UnixFS `Data` message carried in a dag-pb node's Data field.
public struct UnixFSData: Equatable, Sendable {
    /// UnixFS node types.
    public enum Kind: UInt64, Sendable {
        case raw = 0
        case directory = 1
        case file = 2
        case metadata = 3
        case symlink = 4
        case hamtShard = 5
    }

    /// Why bytes are not a UnixFS Data message.
    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { "invalid UnixFS data: \(message)" }
    }

    /// The murmur3-x64-64 multicodec, HAMT shards' hash function.
    public static let murmur3 = UInt64(0x22)

    public var kind: Kind
    public var data: [UInt8]?
    public var fileSize: UInt64?
    public var blockSizes: [UInt64] = []
    public var hashType: UInt64?
    public var fanout: UInt64?

    public init(kind: Kind, data: [UInt8]? = nil, fileSize: UInt64? = nil, blockSizes: [UInt64] = [],
                hashType: UInt64? = nil, fanout: UInt64? = nil) {
        self.kind = kind
        self.data = data
        self.fileSize = fileSize
        self.blockSizes = blockSizes
        self.hashType = hashType
        self.fanout = fanout
    }

    /// Fields in number order; `blocksizes` unpacked, as kubo writes them.
    public func encoded() -> [UInt8] {
        var writer = ProtobufWriter()
        writer.varint(1, kind.rawValue)
        if let data { writer.bytes(2, data) }
        if let fileSize { writer.varint(3, fileSize) }
        for size in blockSizes { writer.varint(4, size) }
        if let hashType { writer.varint(5, hashType) }
        if let fanout { writer.varint(6, fanout) }
        return writer.bytes
    }

    /// Strict decoding of the fields ipfs-xfer understands; mode and mtime (7, 8) are skipped.
    public init(decoding bytes: ArraySlice<UInt8>) throws(DecodeError) {
        var reader = ProtobufReader(bytes)
        var kind: Kind?
        var decoded = UnixFSData(kind: .raw)
        try decodingStrictly(DecodeError.init(message:)) {
            while !reader.isAtEnd {
                switch try reader.next() {
                case .varint(1, let value):
                    guard kind == nil, let parsed = Kind(rawValue: value) else { throw DecodeError(message: "bad Type") }
                    kind = parsed
                case .bytes(2, let value): decoded.data = Array(value)
                case .varint(3, let value): decoded.fileSize = value
                case .varint(4, let value): decoded.blockSizes.append(value)
                case .varint(5, let value): decoded.hashType = value
                case .varint(6, let value): decoded.fanout = value
                case .varint(7, _), .bytes(8, _): break
                default: throw DecodeError(message: "unknown field")
                }
            }
        }
        guard let kind else { throw DecodeError(message: "no Type") }
        decoded.kind = kind
        self = decoded
    }
}

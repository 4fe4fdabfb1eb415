/// A strict reader of the DAG-CBOR that CAR headers and IPNS records use: definite lengths
/// only, counts that fit the input, text validated as UTF-8.
struct CBORReader {
    /// Why the bytes are not DAG-CBOR this reader accepts.
    struct Failure: Error, Equatable, CustomStringConvertible {
        var message: String

        var description: String { message }
    }

    /// One data item's head (arrays, maps and tags are followed by their contents).
    enum Item: Equatable {
        case unsigned(UInt64)
        /// The negative integer -1 - n.
        case negative(UInt64)
        case bytes([UInt8])
        case text(String)
        case array(Int)
        case map(Int)
        case tag(UInt64)
        /// false, true, null (20…22) or a float (its raw bits).
        case simple(UInt64)
    }

    /// How deeply `skip` follows nested arrays, maps and tags.
    static let maximumDepth = 64

    let bytes: [UInt8]
    var offset = 0

    /// Whether every byte has been read.
    var isAtEnd: Bool { offset == bytes.count }

    /// Reads the next item's head.
    mutating func next() throws(Failure) -> Item {
        guard offset < bytes.count else { throw Failure(message: "CBOR ends early") }
        let initial = bytes[offset]
        offset += 1
        let major = initial >> 5
        let info = initial & 0x1F
        let argument = try self.argument(info)
        let remaining = UInt64(bytes.count - offset)
        switch major {
        case 0: return .unsigned(argument)
        case 1: return .negative(argument)
        case 2, 3:
            guard argument <= remaining else { throw Failure(message: "CBOR string too long") }
            let value = Array(bytes[offset..<offset + Int(argument)])
            offset += Int(argument)
            if major == 2 { return .bytes(value) }
            guard let text = String(validating: value, as: UTF8.self) else {
                throw Failure(message: "CBOR text is not UTF-8")
            }
            return .text(text)
        case 4:
            guard argument <= remaining else { throw Failure(message: "CBOR array longer than its input") }
            return .array(Int(argument))
        case 5:
            guard argument <= remaining / 2 else { throw Failure(message: "CBOR map longer than its input") }
            return .map(Int(argument))
        case 6: return .tag(argument)
        default:
            guard [20, 21, 22, 25, 26, 27].contains(info) else {
                throw Failure(message: "CBOR simple value \(info) is not DAG-CBOR")
            }
            return .simple(argument)
        }
    }

    /// Skips the contents of a value whose head `item` was just read (array and map entries, a tag's value).
    mutating func skip(_ item: Item, depth: Int = 0) throws(Failure) {
        guard depth < Self.maximumDepth else { throw Failure(message: "CBOR nested too deeply") }
        switch item {
        case .array(let count):
            for _ in 0..<count { try skip(try next(), depth: depth + 1) }
        case .map(let count):
            for _ in 0..<count * 2 { try skip(try next(), depth: depth + 1) }
        case .tag:
            try skip(try next(), depth: depth + 1)
        case .unsigned, .negative, .bytes, .text, .simple:
            break
        }
    }

    private mutating func argument(_ info: UInt8) throws(Failure) -> UInt64 {
        if info < 24 { return UInt64(info) }
        let width: Int
        switch info {
        case 24: width = 1
        case 25: width = 2
        case 26: width = 4
        case 27: width = 8
        default: throw Failure(message: "indefinite CBOR lengths are not DAG-CBOR")
        }
        guard offset + width <= bytes.count else { throw Failure(message: "CBOR ends early") }
        let value = bytes[offset..<offset + width].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        offset += width
        return value
    }
}

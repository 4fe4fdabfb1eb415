/// A strict reader of the two protobuf wire types dag-pb and UnixFS use: varint (0) and
/// length-delimited (2).
struct ProtobufReader {
    /// Why the bytes are not valid protobuf for these schemas.
    struct Failure: Error, Equatable {
        var message: String
    }

    /// One field: its number and value.
    enum Field {
        case varint(Int, UInt64)
        case bytes(Int, ArraySlice<UInt8>)
    }

    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.offset = 0
    }

    var isAtEnd: Bool { offset >= bytes.count }

    /// Reads the next field.
    mutating func next() throws(Failure) -> Field {
        let key = try varint()
        let number = Int(key >> 3)
        guard number > 0 else { throw Failure(message: "field number 0") }
        switch key & 7 {
        case 0:
            return .varint(number, try varint())
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else { throw Failure(message: "field runs past the end") }
            let start = bytes.startIndex + offset
            offset += Int(length)
            return .bytes(number, bytes[start..<start + Int(length)])
        default:
            throw Failure(message: "unsupported wire type \(key & 7)")
        }
    }

    private mutating func varint() throws(Failure) -> UInt64 {
        do {
            return try Varint.decode(bytes, at: &offset)
        } catch {
            throw Failure(message: error.description)
        }
    }
}

/// Appends protobuf fields.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ number: Int, _ value: UInt64) {
        Varint.append(UInt64(number << 3), to: &bytes)
        Varint.append(value, to: &bytes)
    }

    mutating func bytes(_ number: Int, _ value: some Collection<UInt8>) {
        Varint.append(UInt64(number << 3 | 2), to: &bytes)
        Varint.append(UInt64(value.count), to: &bytes)
        bytes.append(contentsOf: value)
    }
}

/// Runs a strict decode, turning reader failures and any other error into the caller's error.
func decodingStrictly<Failure: Error>(
    _ wrap: (String) -> Failure, _ body: () throws -> Void
) throws(Failure) {
    do {
        try body()
    } catch let error as Failure {
        throw error
    } catch let error as ProtobufReader.Failure {
        throw wrap(error.message)
    } catch {
        throw wrap("\(error)")
    }
}

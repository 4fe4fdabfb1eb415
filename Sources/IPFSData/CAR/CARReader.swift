import Glibc

/// Reads a CARv1 file: checks the header, indexes every section, and hands out blocks only
/// after hashing them against their CIDs.
public final class CARReader: BlockSource {
    /// Why a CAR or one of its blocks was refused.
    public enum ReadError: Error, CustomStringConvertible, Equatable {
        case cannotOpen(String)
        case malformed(String)
        case missingBlock(CID)
        case badBlock(CID)

        public var description: String {
            switch self {
            case .cannotOpen(let message): message
            case .malformed(let message): "malformed CAR: \(message)"
            case .missingBlock(let cid): "block \(cid) is missing"
            case .badBlock(let cid): "block \(cid) does not match its hash"
            }
        }
    }

    /// The largest block accepted (kubo's limit and the trustless gateway spec's).
    public static let maximumBlockSize = 2 * 1024 * 1024

    private let fd: Int32
    private var index: [CID: (offset: Int64, length: Int)] = [:]
    /// The roots the header names (informational: a path names its own root).
    public private(set) var roots: [CID] = []

    public init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError.cannotOpen("cannot open \(path): \(String(cString: strerror(errno)))") }
        do {
            try readIndex()
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    private func read(at offset: Int64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard got >= 0 else { throw ReadError.malformed("read failed: \(String(cString: strerror(errno)))") }
        return Array(bytes[0..<got])
    }

    /// Reads a varint at `offset` from the file; nil at the end of the file.
    private func varint(at offset: inout Int64) throws -> UInt64? {
        let bytes = try read(at: offset, count: 10)
        if bytes.isEmpty { return nil }
        var position = 0
        do {
            let value = try Varint.decode(bytes, at: &position)
            offset += Int64(position)
            return value
        } catch {
            throw ReadError.malformed("section length: \(error)")
        }
    }

    private func readIndex() throws {
        var offset: Int64 = 0
        guard let headerLength = try varint(at: &offset), headerLength > 0, headerLength < 1 << 20 else {
            throw ReadError.malformed("no header")
        }
        let header = try read(at: offset, count: Int(headerLength))
        guard header.count == Int(headerLength) else { throw ReadError.malformed("truncated header") }
        roots = try CARHeader.parse(header)
        offset += Int64(headerLength)
        while let length = try varint(at: &offset) {
            guard length > 0, length <= UInt64(Self.maximumBlockSize + 64) else {
                throw ReadError.malformed("section of \(length) bytes")
            }
            let prefix = try read(at: offset, count: min(Int(length), 64))
            var position = 0
            let cid: CID
            do {
                cid = try CID(bytes: prefix, offset: &position)
            } catch {
                throw ReadError.malformed("section CID: \(error)")
            }
            let blockLength = Int(length) - position
            if index[cid] == nil { index[cid] = (offset + Int64(position), blockLength) }
            offset += Int64(length)
        }
        let end = lseek(fd, 0, SEEK_END)
        guard Int64(end) == offset else { throw ReadError.malformed("truncated section") }
    }

    /// The block with this CID, verified.
    public func block(_ cid: CID) throws -> [UInt8] {
        if cid.hashCode == .identity { return cid.digest }
        guard let entry = index[cid] else { throw ReadError.missingBlock(cid) }
        let bytes = try read(at: entry.offset, count: entry.length)
        guard bytes.count == entry.length, bytes.withUnsafeBytes(cid.matches) else { throw ReadError.badBlock(cid) }
        return bytes
    }
}

/// The CARv1 header: a DAG-CBOR map `{roots: [CID…], version: 1}`.
enum CARHeader {
    static func parse(_ bytes: [UInt8]) throws -> [CID] {
        var reader = CBORReader(bytes: bytes)
        func next() throws(CARReader.ReadError) -> CBORReader.Item {
            do throws(CBORReader.Failure) {
                return try reader.next()
            } catch {
                throw .malformed(error.message)
            }
        }
        guard case .map(let count) = try next() else { throw CARReader.ReadError.malformed("header is not a map") }
        var roots: [CID] = []
        var version: UInt64?
        for _ in 0..<count {
            guard case .text(let key) = try next() else { throw CARReader.ReadError.malformed("header key") }
            switch key {
            case "version":
                guard case .unsigned(let value) = try next() else { throw CARReader.ReadError.malformed("version") }
                version = value
            case "roots":
                guard case .array(let rootCount) = try next() else { throw CARReader.ReadError.malformed("roots") }
                for _ in 0..<rootCount {
                    guard case .tag(42) = try next(), case .bytes(let raw) = try next(),
                          raw.first == 0x00
                    else { throw CARReader.ReadError.malformed("root is not a CID") }
                    var offset = 1
                    roots.append(try CID(bytes: raw, offset: &offset))
                }
            default:
                throw CARReader.ReadError.malformed("unknown header key \(key)")
            }
        }
        guard version == 1 else { throw CARReader.ReadError.malformed("only CARv1 is supported") }
        return roots
    }
}

import Glibc
import Synchronization

/// Writes a CARv1 block by block, as an import's ``BlockSink``: to a file, or streamed to a socket.
///
/// The root is known only when the import ends, but the header comes first. A file's header is
/// written with a placeholder CID of the same length and patched in place by ``finish(root:)``.
/// A stream cannot be patched, so its header names ``streamPlaceholderRoot`` (kubo's `dag/import`
/// with `pin-roots=false` reads the roots only to pin them). Blocks that appear twice are
/// written once.
public final class CARWriter: BlockSink, Sendable {
    /// Why the CAR could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }

        public init(message: String) {
            self.message = message
        }
    }

    /// The root a streamed CAR's header names: the identity CID of no bytes (`bafkqaaa`), the
    /// usual "no root yet" placeholder, which every block store has.
    public static let streamPlaceholderRoot = CID(version: 1, codec: .raw, hashCode: .identity, digest: [])

    private struct State {
        var fd: Int32
        var offset: Int64
        var seen: Set<CID>
    }

    private let path: String
    /// Where a file's header holds the root, patched by ``finish(root:)``; nil for a stream, whose
    /// writes use `send` (no SIGPIPE once the reader has gone).
    private let rootSlot: (offset: Int64, byteCount: Int)?
    private let state: Mutex<State>

    /// Creates `path` for a DAG whose root CID will take `rootByteCount` bytes (34 for CIDv0,
    /// 36 for a sha2-256 CIDv1).
    public convenience init(path: String, rootByteCount: Int) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
        try self.init(fd: fd, name: path, rootBytes: [UInt8](repeating: 0, count: rootByteCount), patchable: true)
    }

    /// Streams a CAR to the connected socket `socket` (not closed here), its header naming
    /// ``streamPlaceholderRoot``. A write fails once the reading end has gone.
    public convenience init(streamingTo socket: Int32) throws {
        try self.init(fd: socket, name: "the CAR stream", rootBytes: Self.streamPlaceholderRoot.bytes, patchable: false)
    }

    private init(fd: Int32, name: String, rootBytes: [UInt8], patchable: Bool) throws {
        path = name
        let header = Self.header(rootBytes: rootBytes)
        let prefix = Varint.encode(UInt64(header.count))
        // The root's bytes end the roots entry; after them come only "version"(8) and 1(1).
        rootSlot = patchable ? (Int64(prefix.count + header.count - 9 - rootBytes.count), rootBytes.count) : nil
        state = Mutex(State(fd: fd, offset: 0, seen: []))
        try append(prefix + header)
    }

    /// The bytes written so far, header included.
    public var byteCount: Int64 {
        state.withLock { $0.offset }
    }

    /// The DAG-CBOR header `{roots: [root], version: 1}` (keys in length-first order).
    static func header(rootBytes: [UInt8]) -> [UInt8] {
        let cid = [0x00] + rootBytes
        let length: [UInt8] = cid.count < 24 ? [0x40 | UInt8(cid.count)] : [0x58, UInt8(cid.count)]  // shortest form
        return [0xA2, 0x65] + Array("roots".utf8) + [0x81, 0xD8, 0x2A] + length + cid
            + [0x67] + Array("version".utf8) + [0x01]
    }

    public func put(_ cid: CID, _ block: [UInt8]) throws {
        let isNew = state.withLock { $0.seen.insert(cid).inserted }
        guard isNew else { return }
        let identity = cid.bytes
        try append(Varint.encode(UInt64(identity.count + block.count)) + identity + block)
    }

    /// Writes the real root into the header and closes the file (not for a stream).
    public func finish(root: CID) throws {
        guard let rootSlot else { preconditionFailure("a streamed CAR's header is already sent") }
        let bytes = root.bytes
        guard bytes.count == rootSlot.byteCount else {
            throw WriteError(message: "root \(root) does not fit the \(rootSlot.byteCount)-byte header slot")
        }
        let fd = state.withLock { $0.fd }
        guard pwrite(fd, bytes, bytes.count, off_t(rootSlot.offset)) == bytes.count,
              fsync(fd) == 0, close(fd) == 0
        else { throw WriteError(message: "cannot finish \(path): \(String(cString: strerror(errno)))") }
    }

    private func append(_ bytes: [UInt8]) throws {
        try state.withLock { state in
            var written = 0
            while written < bytes.count {
                let count = bytes.withUnsafeBytes { buffer in
                    rootSlot == nil ? send(state.fd, buffer.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
                        : write(state.fd, buffer.baseAddress! + written, bytes.count - written)
                }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw WriteError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
                written += count
            }
            state.offset += Int64(bytes.count)
        }
    }
}

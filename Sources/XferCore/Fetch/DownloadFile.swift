import Crypto
import CurlTransfer
import Glibc

/// The file one source downloads into, hashed and size-checked as the bytes arrive.
///
/// It is a hidden temporary file next to `%o`; only a verified one is renamed to `%o`. When
/// resuming, it starts as an earlier partial file whose bytes are hashed first.
public final class DownloadFile: TransferReceiver, @unchecked Sendable {
    /// The temporary path.
    public let path: String
    /// What the finished file must be.
    public let expectation: Expectation
    /// Bytes received from the current source (not counting a resumed prefix).
    public let progress: TransferProgress
    private let fd: Int32
    private var hasher = SHA256()
    /// Bytes in the file, prefix included.
    public private(set) var size: Int64 = 0
    /// Bytes that were already there when this source started.
    public private(set) var resumedFrom: Int64 = 0

    /// Creates an empty file at `path`, or takes over the partial file `prefix` by renaming it.
    public init(path: String, expectation: Expectation, progress: TransferProgress, adopting prefix: String? = nil) throws(SystemError) {
        self.path = path
        self.expectation = expectation
        self.progress = progress
        if let prefix {
            guard rename(prefix, path) == 0 else { throw SystemError("rename \(prefix)") }
            fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open \(path)") }
            try hashExistingContent()
            resumedFrom = size
        } else {
            fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw SystemError("create \(path)") }
        }
    }

    deinit {
        close(fd)
    }

    private func hashExistingContent() throws(SystemError) {
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)")
            }
            if count == 0 { return }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            size += Int64(count)
        }
    }

    /// Empties the file and the hash, to start over from byte 0.
    public func reset() throws(SystemError) {
        guard ftruncate(fd, 0) == 0 else { throw SystemError("truncate \(path)") }
        hasher = SHA256()
        size = 0
        resumedFrom = 0
    }

    public func begin(_ head: TransferHead) throws {
        if let length = head.contentLength, let limit = expectation.maximumSize, size + length > limit {
            throw VerificationError.tooLarge(limit: limit)
        }
    }

    public func receive(_ chunk: UnsafeRawBufferPointer) throws {
        if let limit = expectation.maximumSize, size + Int64(chunk.count) > limit {
            throw VerificationError.tooLarge(limit: limit)
        }
        try FileSystem.writeAll(fd, chunk, path: path)
        hasher.update(bufferPointer: chunk)
        size += Int64(chunk.count)
        progress.add(chunk.count)
    }

    /// Checks the finished file against the expectation.
    public func verify() throws {
        switch expectation {
        case .exact(let record):
            guard size == record.size else { throw VerificationError.wrongSize(expected: record.size, actual: size) }
            let digest = hasher.finalize().map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
            guard digest == record.sha256 else { throw VerificationError.wrongHash(expected: record.sha256, actual: digest) }
        case .signature:
            guard size > 0 else { throw VerificationError.empty }
        case .database:
            do {
                _ = try SyncDatabase(path: path).validate()
            } catch let error as SyncDatabase.ReadError {
                throw VerificationError.badDatabase(error.message)
            }
        case .complete:
            break
        }
    }
}

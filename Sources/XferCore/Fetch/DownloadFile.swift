import CurlTransfer
import Glibc

/// The file one source downloads into, size-checked as the bytes arrive and hashed alongside.
///
/// It is a hidden temporary file next to `%o`; only a verified one is renamed to `%o`. When
/// resuming, it starts as an earlier partial file, whose bytes are hashed too. Only packages are
/// hashed (their SHA-256 is known); the hash runs on its own thread (``FileHasher``).
public final class DownloadFile: TransferReceiver, @unchecked Sendable {
    /// The temporary path.
    public let path: String
    /// What the finished file must be.
    public let expectation: Expectation
    /// Bytes received from the current source (not counting a resumed prefix).
    public let progress: TransferProgress
    private let fd: Int32
    private var hasher: FileHasher?
    /// Bytes in the file, prefix included.
    public private(set) var size: Int64 = 0
    /// Bytes that were already there when this source started.
    public private(set) var resumedFrom: Int64 = 0
    /// A verified database's package records, read while it was checked (for its index).
    public private(set) var databaseRecords: [PackageRecord] = []

    /// Creates an empty file at `path`, or takes over the partial file `prefix` by renaming it.
    public init(path: String, expectation: Expectation, progress: TransferProgress, adopting prefix: String? = nil) throws(SystemError) {
        self.path = path
        self.expectation = expectation
        self.progress = progress
        if let prefix {
            guard rename(prefix, path) == 0 else { throw SystemError("rename \(prefix)") }
            fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open \(path)") }
            size = FileSystem.fileSize(path) ?? 0
            resumedFrom = size
        } else {
            fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw SystemError("create \(path)") }
        }
        try startHashing()
    }

    deinit {
        hasher?.cancel()
        close(fd)
    }

    private func startHashing() throws(SystemError) {
        guard case .exact = expectation else { return }
        hasher = try FileHasher(fd: fd, path: path)
        hasher?.advance(to: size)
    }

    /// Empties the file and the hash, to start over from byte 0.
    public func reset() throws(SystemError) {
        hasher?.cancel()
        guard ftruncate(fd, 0) == 0 else { throw SystemError("truncate \(path)") }
        size = 0
        resumedFrom = 0
        try startHashing()
    }

    public func begin(_ head: TransferHead) throws {
        if let length = head.contentLength, let limit = expectation.maximumSize, size + length > limit {
            throw VerificationError.tooLarge(limit: limit)
        }
        if let length = head.contentLength { progress.expect(length) }
    }

    public func receive(_ chunk: UnsafeRawBufferPointer) throws {
        if let limit = expectation.maximumSize, size + Int64(chunk.count) > limit {
            throw VerificationError.tooLarge(limit: limit)
        }
        try FileSystem.writeAll(fd, chunk, path: path)
        size += Int64(chunk.count)
        hasher?.advance(to: size)
        progress.add(chunk.count)
    }

    /// Checks the finished file against the expectation.
    public func verify() throws {
        switch expectation {
        case .exact(let record):
            guard size == record.size else { throw VerificationError.wrongSize(expected: record.size, actual: size) }
            let digest = try hasher?.finish(size: size) ?? ""
            hasher = nil
            guard digest == record.sha256 else { throw VerificationError.wrongHash(expected: record.sha256, actual: digest) }
        case .signature:
            guard size > 0 else { throw VerificationError.empty }
        case .database:
            do {
                databaseRecords = try SyncDatabase(path: path).completeRecords()
            } catch let error as SyncDatabase.ReadError {
                throw VerificationError.badDatabase(error.message)
            }
        case .complete:
            break
        }
    }
}

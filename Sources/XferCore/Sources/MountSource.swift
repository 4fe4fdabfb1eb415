import CForkReader
import CurlTransfer
import Glibc
import Synchronization

/// A file under a kubo FUSE mount (`<MountPoint>/<cid>/…`), read so that a hung mount cannot
/// hold the process.
///
/// FUSE reads of unavailable content block in the kernel, and a blocked read cannot even be
/// killed until the file system answers. So the open and every read happen in a forked child
/// that copies the file into a pipe; this side only polls the pipe and, when the mount stalls or
/// the race is lost, kills the child and walks away from it.
public struct MountSource: Source {
    /// Why the mount could not give the file.
    public enum MountError: Error, CustomStringConvertible, Equatable {
        case notFound(String)
        case notAFile(String)
        case readFailed(String, status: Int32)

        public var description: String {
            switch self {
            case .notFound(let path): "\(path) not found"
            case .notAFile(let path): "\(path) is not a regular file"
            case .readFailed(let path, let status): "reading \(path) failed (reader status \(status))"
            }
        }
    }

    public let kind = SourceKind.mount
    /// The file's path under the mount.
    public let path: String
    public let label: String
    public let healthKey: String

    public init(path: String, mountPoint: String) {
        self.path = path
        self.label = "mount \(mountPoint)"
        self.healthKey = "mount \(mountPoint)"
    }

    public func fetch(into file: DownloadFile, timeouts: Timeouts) async throws {
        try await copy(from: file.size, stallTimeout: timeouts.stall, receive: file.receive)
    }

    /// Reads from the range's first byte; the receiver stops it at the end.
    public func fetch(
        range: Range<Int64>, of fileSize: Int64, into receiver: any TransferReceiver, timeouts: Timeouts
    ) async throws {
        try await copy(from: range.lowerBound, stallTimeout: timeouts.stall, receive: receiver.receive)
    }

    /// Copies the file from `offset` to `receive` on a dedicated thread; cancelling the task
    /// abandons the reader.
    private func copy(
        from offset: Int64, stallTimeout: Double, receive: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void
    ) async throws {
        let cancelled = Atomic<Bool>(false)
        let path = self.path
        try await withTaskCancellationHandler {
            try await DedicatedThread.run {
                try Self.copy(path: path, from: offset, stallTimeout: stallTimeout, receive: receive) {
                    cancelled.load(ordering: .relaxed)
                }
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
        }
    }

    /// Reads a small file (at most `limit` bytes) under the mount the same safe way.
    static func readSmallFile(path: String, limit: Int, stallTimeout: Double) async throws -> [UInt8] {
        try await DedicatedThread.run {
            let collected = MemoryReceiver(limit: limit)
            try copy(path: path, from: 0, stallTimeout: stallTimeout, receive: collected.receive, isCancelled: { false })
            return collected.bytes
        }
    }

    /// Copies the file from byte `offset` through a reader child; runs on a dedicated thread.
    private static func copy(
        path: String, from offset: Int64, stallTimeout: Double, receive: (UnsafeRawBufferPointer) throws -> Void,
        isCancelled: () -> Bool
    ) throws {
        var readFD: Int32 = -1
        let pid = xfer_fork_reader(path, off_t(offset), &readFD)
        guard pid > 0 else { throw SystemError("fork reader for \(path)") }
        var reaped = false
        defer {
            close(readFD)
            if !reaped {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, WNOHANG)  // a child stuck in the kernel is left behind
            }
        }
        var buffer = [UInt8](repeating: 0, count: 1024 * 1024)
        var lastProgress = Monotonic.nanoseconds()
        while true {
            if isCancelled() { throw TransferError.cancelled }
            var pollFD = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollFD, 1, 100)
            if ready < 0 && errno != EINTR { throw SystemError("poll reader for \(path)") }
            if ready <= 0 {
                if Monotonic.seconds(since: lastProgress) >= stallTimeout {
                    throw TransferError.stalled(seconds: stallTimeout)
                }
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read reader pipe for \(path)")
            }
            if count == 0 { break }
            try buffer.withUnsafeBytes { try receive(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            lastProgress = Monotonic.nanoseconds()
        }
        var status: Int32 = 0
        let deadline = Monotonic.nanoseconds() + 2_000_000_000
        while waitpid(pid, &status, WNOHANG) == 0 {
            guard Monotonic.nanoseconds() < deadline else { throw MountError.readFailed(path, status: -1) }
            usleep(1000)
        }
        reaped = true
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
        switch exitStatus {
        case Int32(XFER_READER_OK): return
        case Int32(XFER_READER_NOT_FOUND): throw MountError.notFound(path)
        case Int32(XFER_READER_NOT_A_FILE): throw MountError.notAFile(path)
        default: throw MountError.readFailed(path, status: exitStatus)
        }
    }
}

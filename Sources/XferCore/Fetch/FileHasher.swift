import Crypto
import Dispatch
import Glibc
import Synchronization

/// Computes a growing file's SHA-256 on a thread of its own, reading back what was written.
///
/// Downloads are written by the transfer thread; hashing them there too would cost a large
/// file a third of its speed. This thread follows the writer through the page cache instead, so
/// on two cores the hash is ready a moment after the last byte arrives, in constant memory.
///
/// The thread starts only once the file passes ``threadThreshold``: most packages are smaller,
/// and for them a thread polling the writer costs more than hashing the file at the end, on the
/// caller's thread (a 1 KiB package in a 300-package upgrade would pay a thread per call).
final class FileHasher: @unchecked Sendable {
    /// The size from which the hash follows the download on its own thread.
    static let threadThreshold: Int64 = 1 << 20

    private let fd: Int32
    private let path: String
    private let available = Atomic<Int64>(0)
    private let ended = Atomic<Bool>(false)
    private let cancelled = Atomic<Bool>(false)
    /// Set once by whoever starts the thread or hashes inline; the fd is then theirs to close.
    private let claimed = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// Written by the hashing thread before it signals `done`; read only after waiting on it.
    private var result: Result<String, SystemError> = .failure(SystemError("hash not finished", code: 0))

    /// Prepares to hash the file open as `fd` (duplicated; the caller keeps its own).
    init(fd: Int32, path: String) throws(SystemError) {
        let own = dup(fd)
        guard own >= 0 else { throw SystemError("dup \(path)") }
        self.fd = own
        self.path = path
    }

    deinit {
        if claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            close(fd)
        }
    }

    /// Tells the hasher the file now has `size` bytes; a file this big gets the thread.
    func advance(to size: Int64) {
        available.store(size, ordering: .releasing)
        if size >= Self.threadThreshold,
           claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            do {
                try DedicatedThread.detach { self.run() }
            } catch {
                result = .failure(error)
                close(fd)
                done.signal()
            }
        }
    }

    /// The hash of the first `size` bytes, the whole file: from the thread, or read here.
    func finish(size: Int64) throws(SystemError) -> String {
        if claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            defer { close(fd) }
            return try hash(size: size)
        }
        advance(to: size)
        ended.store(true, ordering: .releasing)
        done.wait()
        return try result.get()
    }

    /// Stops the thread without a result (the download was abandoned or restarts).
    func cancel() {
        cancelled.store(true, ordering: .releasing)
    }

    /// Reads and hashes the first `size` bytes on this thread.
    private func hash(size: Int64) throws(SystemError) -> String {
        var hasher = SHA256()
        var hashed: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: Int(min(size, 1 << 20)))
        while hashed < size {
            try hashNext(upTo: size, into: &hasher, hashed: &hashed, buffer: &buffer)
        }
        return Hex.lowercase(hasher.finalize())
    }

    /// Reads the next bytes below `target` into `hasher` (one read of at most the buffer's size).
    private func hashNext(upTo target: Int64, into hasher: inout SHA256, hashed: inout Int64, buffer: inout [UInt8]) throws(SystemError) {
        let want = Int(min(Int64(buffer.count), target - hashed))
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(hashed)) }
        if count < 0 && errno == EINTR { return }
        guard count > 0 else { throw SystemError("read back \(path)") }
        buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        hashed += Int64(count)
    }

    private func run() {
        defer {
            close(fd)
            done.signal()
        }
        var hasher = SHA256()
        var hashed: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while !cancelled.load(ordering: .acquiring) {
            let target = available.load(ordering: .acquiring)
            if hashed < target {
                do {
                    try hashNext(upTo: target, into: &hasher, hashed: &hashed, buffer: &buffer)
                } catch {
                    result = .failure(error)
                    return
                }
            } else if ended.load(ordering: .acquiring) && hashed >= available.load(ordering: .acquiring) {
                result = .success(Hex.lowercase(hasher.finalize()))
                return
            } else {
                usleep(200)  // caught up with the writer
            }
        }
    }
}

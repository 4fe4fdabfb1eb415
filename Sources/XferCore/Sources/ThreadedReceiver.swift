import CurlTransfer
import Dispatch
import Synchronization

/// Hands a response's bytes to a consumer that runs on a thread of its own.
///
/// Checking a CAR costs a SHA-256 of every block. Done on the transfer thread, it keeps that
/// thread from reading the socket, so the server waits while the client hashes and the two
/// never overlap. Here the transfer thread only copies the bytes into a few 256 KiB buffers; the
/// consumer's thread verifies and writes them. When every buffer is full the transfer thread
/// waits, which bounds the memory at about 2 MiB.
final class ThreadedReceiver: TransferReceiver, @unchecked Sendable {
    private static let bufferSize = 256 << 10
    private static let buffers = 8

    private struct Queue: ~Copyable {
        var filled: [[UInt8]] = []
        var spare: [[UInt8]] = []
        var closed = false
        var error: (any Error)?
    }

    private let head: @Sendable (TransferHead) throws -> Void
    private let consume: (UnsafeRawBufferPointer) throws -> Void
    private let queue = Mutex(Queue())
    private let free = DispatchSemaphore(value: ThreadedReceiver.buffers)
    private let ready = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// The buffer being filled; touched by the transfer thread only.
    private var current: [UInt8] = []

    /// Starts the consumer's thread; ``finish()`` must follow. `head` checks the response head on
    /// the transfer thread.
    init(head: @escaping @Sendable (TransferHead) throws -> Void, consume: @escaping (UnsafeRawBufferPointer) throws -> Void) throws(SystemError) {
        self.head = head
        self.consume = consume
        try DedicatedThread.detach { self.run() }
    }

    func begin(_ head: TransferHead) throws {
        try self.head(head)
    }

    func receive(_ chunk: UnsafeRawBufferPointer) throws {
        if let error = queue.withLock({ $0.error }) { throw error }
        var rest = chunk[...]
        while !rest.isEmpty {
            if current.capacity == 0 {
                free.wait()
                current = queue.withLock { $0.spare.popLast() } ?? []
                current.reserveCapacity(Self.bufferSize)
            }
            let taken = rest.prefix(Self.bufferSize - current.count)
            current.append(contentsOf: taken)
            rest = rest.dropFirst(taken.count)
            if current.count == Self.bufferSize { hand() }
        }
    }

    /// Waits until the consumer has taken every byte received, then rethrows its error, if any.
    /// Called once, after the transfer ended in whatever way.
    func finish() throws {
        if !current.isEmpty { hand() }
        if current.capacity > 0 { free.signal() }
        queue.withLock { $0.closed = true }
        ready.signal()
        done.wait()
        if let error = queue.withLock({ $0.error }) { throw error }
    }

    private func hand() {
        let full = current
        current = []
        queue.withLock { $0.filled.append(full) }
        ready.signal()
    }

    private func run() {
        defer { done.signal() }
        while true {
            ready.wait()
            let next: [UInt8]? = queue.withLock { queue in
                queue.filled.isEmpty ? nil : queue.filled.removeFirst()
            }
            guard var bytes = next else {
                if queue.withLock({ $0.closed && $0.filled.isEmpty }) { return }
                continue
            }
            if queue.withLock({ $0.error == nil }) {
                do {
                    try bytes.withUnsafeBytes { try consume($0) }
                } catch {
                    queue.withLock { $0.error = error }
                }
            }
            bytes.removeAll(keepingCapacity: true)
            queue.withLock { $0.spare.append(bytes) }
            free.signal()
        }
    }
}

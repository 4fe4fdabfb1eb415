import Glibc

/// Runs blocking work on a thread of its own, so it never occupies Swift's cooperative pool.
enum DedicatedThread {
    /// Runs `body` on a new detached thread and returns its result.
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try detach { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Starts `work` on a new detached thread.
    static func detach(_ work: @escaping @Sendable () -> Void) throws(SystemError) {
        let context = Unmanaged.passRetained(Job(work)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            Unmanaged<Job>.fromOpaque(context!).takeRetainedValue().work()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Job>.fromOpaque(context).release()
            throw SystemError("pthread_create", code: status)
        }
        pthread_detach(thread)
    }

    private final class Job: Sendable {
        let work: @Sendable () -> Void

        init(_ work: @escaping @Sendable () -> Void) {
            self.work = work
        }
    }
}

import Dispatch
import Synchronization

/// A task executor whose jobs run on the one thread blocked in ``run(_:)``: pacman's per-file
/// call runs on the process's main thread instead of the concurrency pool's.
///
/// pacman starts ipfs-xfer once per file. Under `async` main the main task runs on a pool thread
/// while the main thread waits, and each return to the main actor wakes yet another thread; here
/// the fetch's own jobs, and those of its child tasks (which inherit the executor preference), run
/// on the thread that called ``run(_:)``, woken only by libcurl's loop thread. Unstructured tasks
/// (`Task {}`, `Task.detached`) still run on the global pool, as anywhere else.
public final class CallingThreadExecutor: TaskExecutor {
    /// Jobs enqueued and not run yet, oldest first.
    private let jobs = Mutex<[UnownedJob]>([])
    /// Signalled once per enqueued job, and once when the operation has finished.
    private let wake = DispatchSemaphore(value: 0)

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        wake.signal()
    }

    /// Runs `operation` to its end with the calling thread as its executor, and returns its result.
    ///
    /// The calling thread does nothing else meanwhile; a part of the operation that resumes on
    /// another executor (the global pool after `Task.sleep`, say) still ends the wait when it
    /// finishes there.
    public static func run<Value: Sendable>(_ operation: sending @escaping () async -> Value) -> Value {
        let executor = CallingThreadExecutor()
        let result = ResultSlot<Value>()
        Task(executorPreference: executor) {
            let value = await operation()
            result.value.withLock { $0 = value }
            executor.wake.signal()
        }
        while true {
            executor.wake.wait()
            if let value = result.value.withLock({ $0 }) { return value }
            if let job = executor.jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                job.runSynchronously(on: executor.asUnownedTaskExecutor())
            }
        }
    }

    /// Where the operation leaves its result for the waiting thread.
    private final class ResultSlot<Value: Sendable>: Sendable {
        let value = Mutex<Value?>(nil)
    }
}

import Dispatch
import Glibc
import IPFSData
import Synchronization

/// Hashes the files a walk finds changed while the walk goes on, on a thread of its own, so
/// their blocks are on their way to kubo before the walk ends: on a republish, kubo storing
/// the new blocks takes most of the run, and it can start at once.
///
/// It only gets ahead. The publisher still decides from its state which files changed, takes
/// the nodes made here for those and hashes any others itself. A file that fails here (gone,
/// unreadable, or kubo refused a block) is left to that second pass, which reports the error;
/// after a failure the rest of the queue is left to it too.
final class EagerHasher: Sendable {
    private struct Work {
        /// Real paths in the order they came; those before `next` are taken.
        var queue: [String] = []
        var next = 0
        var seen: Set<String> = []
        var hashed: [String: ImportedNode] = [:]
        var closed = false
        var waiter: CheckedContinuation<[String: ImportedNode], Never>?
    }

    private let work = Mutex(Work())
    /// Signalled once per queued file and once by ``finish()``.
    private let ready = DispatchSemaphore(value: 0)
    private let importer: FileImporter

    /// Starts the hashing thread; the blocks go to `sink`.
    init(parameters: ImportParameters, sink: any BlockSink) throws(SystemError) {
        importer = FileImporter(parameters: parameters, sink: sink)
        try DedicatedThread.detach { self.run() }
    }

    /// Queues the file at `realPath`, unless it came before.
    func add(_ realPath: String) {
        let added = work.withLock { work in
            guard !work.closed, work.seen.insert(realPath).inserted else { return false }
            work.queue.append(realPath)
            return true
        }
        if added { ready.signal() }
    }

    /// Takes no more files; once the queued ones are done, returns the nodes of those hashed, by
    /// real path, and the thread ends.
    func finish() async -> [String: ImportedNode] {
        await withCheckedContinuation { continuation in
            work.withLock { work in
                work.closed = true
                work.waiter = continuation
            }
            ready.signal()
        }
    }

    private func run() {
        var failed = false
        while true {
            ready.wait()
            let taken: String? = work.withLock { work in
                guard work.next < work.queue.count else { return nil }
                defer { work.next += 1 }
                return work.queue[work.next]
            }
            // Every file's signal comes after it is queued, so a signal with nothing queued is finish()'s.
            guard let path = taken else {
                let (waiter, hashed) = work.withLock { ($0.waiter, $0.hashed) }
                waiter?.resume(returning: hashed)
                return
            }
            if failed { continue }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            do {
                let node = try importer.importFile(fd: fd, path: path)
                work.withLock { $0.hashed[path] = node }
            } catch {
                failed = true
            }
            close(fd)
        }
    }
}

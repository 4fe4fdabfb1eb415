import Dispatch
import Glibc
import IPFSData
import Synchronization

/// Hashes each real file of a mirror once, on threads of its own, for every part of the tree
/// that needs it: the file in `pool/` and each link into it share one node, and whichever part
/// asks first starts the hashing.
///
/// A walk asks as soon as it finds a file changed (``request(_:)``), so on a republish the new
/// blocks are on their way to kubo before the walk ends; each part of the tree then waits for
/// the nodes of the files it found changed (``nodes(_:)``). A file that cannot be read fails
/// the parts that need it. The threads end with ``close()``.
final class FileHashes: Sendable {
    /// Why a file's node could not be made.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private enum Outcome {
        case hashed(ImportedNode)
        case failed(String)
    }

    /// A ``nodes(_:)`` call waiting for the files it still lacks.
    private struct Waiter {
        var missing: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Work {
        /// Real paths in the order asked for; those before `next` are taken.
        var queue: [String] = []
        var next = 0
        var asked: Set<String> = []
        var outcomes: [String: Outcome] = [:]
        var waiters: [Int: Waiter] = [:]
        /// The calls waiting for each file.
        var waiting: [String: [Int]] = [:]
        var nextWaiter = 0
        var closed = false
        var filesHashed = 0
        var bytesHashed: Int64 = 0
    }

    private let work = Mutex(Work())
    /// Signalled once per queued file, and once per thread by ``close()``.
    private let ready = DispatchSemaphore(value: 0)
    private let importer: FileImporter
    private let threads: Int

    /// Starts `threads` hashing threads; the blocks go to `sink`.
    init(parameters: ImportParameters, sink: any BlockSink, threads: Int) throws(SystemError) {
        importer = FileImporter(parameters: parameters, sink: sink)
        self.threads = max(1, threads)
        for _ in 0..<self.threads { try DedicatedThread.detach { self.run() } }
    }

    /// How many files were hashed, and how many bytes they hold.
    var hashed: (files: Int, bytes: Int64) {
        work.withLock { ($0.filesHashed, $0.bytesHashed) }
    }

    /// Starts hashing the file at `realPath`, unless it was asked for before.
    func request(_ realPath: String) {
        request([realPath])
    }

    /// The nodes of the files at `realPaths`, hashing those not asked for before; by real path.
    /// Throws the first failure among them, or when the calling task is cancelled.
    func nodes(_ realPaths: [String]) async throws -> [String: ImportedNode] {
        request(realPaths)
        let id = work.withLock { work in
            defer { work.nextWaiter += 1 }
            return work.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = work.withLock { work in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    var missing: Set<String> = []
                    for path in realPaths {
                        switch work.outcomes[path] {
                        case .failed(let reason): return .failure(Failure(description: reason))
                        case .hashed: continue
                        case nil: missing.insert(path)
                        }
                    }
                    if missing.isEmpty { return .success(()) }
                    work.waiters[id] = Waiter(missing: missing.count, continuation: continuation)
                    for path in missing { work.waiting[path, default: []].append(id) }
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = work.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(throwing: CancellationError())
        }
        return work.withLock { work in
            var nodes: [String: ImportedNode] = [:]
            nodes.reserveCapacity(realPaths.count)
            for path in realPaths {
                if case .hashed(let node) = work.outcomes[path] { nodes[path] = node }
            }
            return nodes
        }
    }

    /// Takes no more files: the threads end once the file each is hashing is done.
    func close() {
        let open = work.withLock { work in
            defer { work.closed = true }
            return !work.closed
        }
        guard open else { return }
        for _ in 0..<threads { ready.signal() }
    }

    private func request(_ realPaths: [String]) {
        let added = work.withLock { work in
            guard !work.closed else { return 0 }
            var added = 0
            for path in realPaths where work.asked.insert(path).inserted {
                work.queue.append(path)
                added += 1
            }
            return added
        }
        for _ in 0..<added { ready.signal() }
    }

    private func run() {
        while true {
            ready.wait()
            let taken: String? = work.withLock { work in
                guard !work.closed, work.next < work.queue.count else { return nil }
                defer { work.next += 1 }
                return work.queue[work.next]
            }
            // Every file's signal comes after it is queued, so a signal with nothing to take is close()'s.
            guard let path = taken else { return }
            let outcome: Outcome
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                outcome = .failed("cannot read \(path): \(String(cString: strerror(errno)))")
            } else {
                do {
                    outcome = .hashed(try importer.importFile(fd: fd, path: path))
                } catch {
                    outcome = .failed("\(error)")
                }
                Glibc.close(fd)
            }
            finish(path, outcome)
        }
    }

    /// Records a file's outcome and resumes the calls it completes (or fails).
    private func finish(_ path: String, _ outcome: Outcome) {
        let resumed: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = work.withLock { work in
            work.outcomes[path] = outcome
            if case .hashed(let node) = outcome {
                work.filesHashed += 1
                work.bytesHashed += Int64(node.fileSize)
            }
            var resumed: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = []
            for id in work.waiting.removeValue(forKey: path) ?? [] {
                // (A call already failed or cancelled is gone.)
                guard let waiter = work.waiters[id] else { continue }
                if case .failed(let reason) = outcome {
                    work.waiters[id] = nil
                    resumed.append((waiter.continuation, .failure(Failure(description: reason))))
                } else if waiter.missing == 1 {
                    work.waiters[id] = nil
                    resumed.append((waiter.continuation, .success(())))
                } else {
                    work.waiters[id]!.missing -= 1
                }
            }
            return resumed
        }
        for (continuation, result) in resumed { continuation.resume(with: result) }
    }
}

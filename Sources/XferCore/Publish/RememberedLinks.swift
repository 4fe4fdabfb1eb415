import Dispatch
import Synchronization

/// The symlinks the last walk found, handed to this run's walk (``MirrorTree/knownLinks``),
/// which runs on threads of its own while the state they come from is still being read: a
/// walk that asks before then waits.
final class RememberedLinks: Sendable {
    private let files = Mutex<[String: PublishState.FileRecord]?>(nil)
    /// Signalled once the files are known; each waiter signals it again for the next.
    private let known = DispatchSemaphore(value: 0)

    /// Hands over the last run's files (once).
    func provide(_ records: [String: PublishState.FileRecord]) {
        files.withLock { $0 = records }
        known.signal()
    }

    /// The link the last walk found at `path`, if any; waits until the files are known.
    func link(at path: String) -> MirrorTree.Link? {
        let found: MirrorTree.Link?? = files.withLock { files in files.map { $0[path]?.link } }  // nil: not yet known
        if let found { return found }
        known.wait()
        known.signal()
        return files.withLock { $0?[path]?.link }
    }
}

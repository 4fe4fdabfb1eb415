import IPFSData
import Synchronization

/// A sink for one directory or the index: notes every block it is given and passes on only
/// those kubo does not have yet from the last run.
///
/// A rebuilt HAMT directory is re-encoded whole, but most of its shards come out the same as
/// before; the same goes for the index's chunks before its first changed line. Those are
/// pinned under the last root already, so sending them again would only make kubo store them
/// (and sync them to disk) again.
final class KnownBlockFilter: BlockSink {
    private let next: any BlockSink
    private let known: Set<CID>
    private let seen = Mutex<[CID]>([])

    init(passingTo next: any BlockSink, known: Set<CID>) {
        self.next = next
        self.known = known
    }

    var wantsBlocks: Bool { next.wantsBlocks }

    /// Every block given so far, in order (the node itself last).
    var blocks: [CID] { seen.withLock { $0 } }

    func put(_ cid: CID, _ block: [UInt8]) throws {
        seen.withLock { $0.append(cid) }
        if !known.contains(cid) { try next.put(cid, block) }
    }
}

/// Where an import's blocks go: nowhere (only the CIDs are wanted), a CAR file, kubo.
public protocol BlockSink: Sendable {
    /// False when blocks are not wanted, only CIDs: the importer then hashes leaves in place
    /// instead of assembling their bytes.
    var wantsBlocks: Bool { get }
    /// Receives one block; blocks arrive children first, the root last.
    func put(_ cid: CID, _ block: [UInt8]) throws
}

extension BlockSink {
    public var wantsBlocks: Bool { true }
}

/// Drops every block: `ipfs add --only-hash`.
public struct DiscardingSink: BlockSink {
    public init() {}
    public var wantsBlocks: Bool { false }
    public func put(_ cid: CID, _ block: [UInt8]) throws {}
}

/// A node made by the importer: its CID and the sizes its parent's link needs.
public struct ImportedNode: Sendable, Equatable {
    public var cid: CID
    /// The whole DAG's size: this block plus its links' Tsizes (a link's Tsize).
    public var tsize: UInt64
    /// The file bytes below it (a parent file node's `blocksizes` entry); 0 for directories.
    public var fileSize: UInt64

    public init(cid: CID, tsize: UInt64, fileSize: UInt64) {
        self.cid = cid
        self.tsize = tsize
        self.fileSize = fileSize
    }
}

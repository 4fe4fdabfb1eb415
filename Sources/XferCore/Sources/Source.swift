import CurlTransfer

/// One place a file can come from: the local gateway, the /ipfs mount, or an HTTP mirror.
public protocol Source: Sendable {
    /// What kind of place it is; the race starts IPFS kinds first and hedges with mirrors.
    var kind: SourceKind { get }
    /// A short name for messages and the transfer log, e.g. `gateway http://127.0.0.1:8080`.
    var label: String { get }
    /// The key its health is remembered under between calls (the host, not the file).
    var healthKey: String { get }
    /// Streams the file into `file`, continuing after `file.size` bytes when that is not 0.
    /// Throws ``CurlTransfer/TransferError/rangeNotSupported`` when it cannot continue.
    func fetch(into file: DownloadFile, timeouts: Timeouts) async throws
    /// Streams the bytes of `range` of the file (`fileSize` bytes in all) into `receiver`, for a
    /// download shared with other sources; the receiver may stop it before the range's end by
    /// throwing. The receiver's ``CurlTransfer/TransferReceiver/begin(_:)`` checks an HTTP
    /// answer's status and length.
    func fetch(range: Range<Int64>, of fileSize: Int64, into receiver: any TransferReceiver, timeouts: Timeouts) async throws
}

/// The kinds of source, in the order they are preferred.
public enum SourceKind: String, Sendable, CaseIterable {
    case gateway
    case trustless
    case mount
    case mirror

    /// True for sources that read from IPFS.
    public var isIPFS: Bool { self != .mirror }
}

/// How patient every source is.
public struct Timeouts: Sendable {
    public var connect: Double
    public var stall: Double

    public init(connect: Double, stall: Double) {
        self.connect = connect
        self.stall = stall
    }
}

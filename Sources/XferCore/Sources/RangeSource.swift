import CurlTransfer
import IPFSData

/// A place that can give any run of a file's leaves, for a segmented download: an HTTP byte
/// range (a path gateway's `/ipfs/<file cid>` or a mirror's URL), or the raw blocks of a
/// trustless gateway. What it returns is checked leaf by leaf by the caller.
struct RangeSource: Sendable {
    /// How the bytes are asked for.
    enum Method: Sendable, Equatable {
        /// `GET url` with `Range: bytes=a-b`.
        case byteRange(url: String)
        /// `GET <gateway>/ipfs/<leaf cid>?format=raw` for each leaf.
        case rawBlocks(gateway: String)
    }

    /// Why a range could not be had.
    enum Failure: Error, CustomStringConvertible, Equatable {
        case noRangeSupport(status: Int)
        case wrongLength(expected: Int, actual: Int)
        case badBlock(CID)

        var description: String {
            switch self {
            case .noRangeSupport(let status): "answered a range request with status \(status), not 206"
            case .wrongLength(let expected, let actual): "sent \(actual) bytes for a range of \(expected)"
            case .badBlock(let cid): "sent a block that is not \(cid)"
            }
        }
    }

    let kind: SourceKind
    let label: String
    let healthKey: String
    let method: Method
    let userAgent: String?

    /// The bytes of `leaves` (consecutive), as the source sends them.
    func fetch(_ leaves: ArraySlice<FileLayout.Leaf>, fileSize: UInt64, timeouts: Timeouts) async throws -> [UInt8] {
        guard let first = leaves.first, let last = leaves.last else { return [] }
        let length = Int(last.offset + last.size - first.offset)
        switch method {
        case .byteRange(let url):
            let receiver = MemoryReceiver(limit: length)
            let request = TransferRequest(
                url: url, connectTimeout: timeouts.connect, stallTimeout: timeouts.stall,
                headers: ["Range: bytes=\(first.offset)-\(last.offset + last.size - 1)"], userAgent: userAgent)
            let response = try await CurlMulti.shared.perform(request, into: receiver)
            let isWholeFile = first.offset == 0 && UInt64(length) == fileSize
            guard response.status == 206 || (response.status == 200 && isWholeFile) else {
                throw Failure.noRangeSupport(status: response.status)
            }
            guard receiver.bytes.count == length else { throw Failure.wrongLength(expected: length, actual: receiver.bytes.count) }
            return receiver.bytes
        case .rawBlocks(let gateway):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(length)
            for leaf in leaves {
                let block = try await TrustlessGatewaySource.rawBlock(
                    leaf.cid, from: gateway, timeouts: timeouts, userAgent: userAgent)
                guard block.withUnsafeBytes({ leaf.cid.matches($0) }) else { throw Failure.badBlock(leaf.cid) }
                bytes += try FileLayout.content(ofLeafBlock: block, cid: leaf.cid)
            }
            return bytes
        }
    }
}

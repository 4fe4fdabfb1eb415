/// Collects a small response in memory, up to a limit.
public final class MemoryReceiver: TransferReceiver, @unchecked Sendable {
    /// Why the response was refused.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case tooLarge(limit: Int)

        public var description: String {
            switch self {
            case .tooLarge(let limit): "the response is over \(limit) bytes"
            }
        }
    }

    /// The most bytes taken.
    public let limit: Int
    /// The body so far.
    public private(set) var bytes: [UInt8] = []
    /// The response's `Content-Type`, once the head is in.
    public private(set) var contentType: String?

    public init(limit: Int) {
        self.limit = limit
    }

    public func begin(_ head: TransferHead) throws {
        if let length = head.contentLength, length > limit { throw Failure.tooLarge(limit: limit) }
        contentType = head.contentType
    }

    public func receive(_ chunk: UnsafeRawBufferPointer) throws {
        guard bytes.count + chunk.count <= limit else { throw Failure.tooLarge(limit: limit) }
        bytes.append(contentsOf: chunk)
    }
}

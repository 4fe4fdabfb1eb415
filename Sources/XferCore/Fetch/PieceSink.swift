import CurlTransfer
import Glibc

/// Where one piece's bytes go: written at their place in the shared file, up to the piece's
/// end as the ``PieceBoard`` cuts it; reaching the end stops the transfer.
final class PieceSink: TransferReceiver, @unchecked Sendable {
    /// Why a piece's transfer stopped early or was refused.
    enum Stop: Error, CustomStringConvertible, Equatable {
        /// Every byte the piece still holds is written (not a failure).
        case reached
        case noRangeSupport(status: Int)
        case wrongLength(expected: Int64, actual: Int64)

        var description: String {
            switch self {
            case .reached: "piece complete"
            case .noRangeSupport(let status): "answered a range request with status \(status), not 206"
            case .wrongLength(let expected, let actual): "announced \(actual) bytes for a range of \(expected)"
            }
        }
    }

    let board: PieceBoard
    let piece: Int
    /// The bytes asked for (the board may cut the end earlier).
    let range: Range<Int64>
    private let fd: Int32
    private let path: String
    private let progress: TransferProgress
    private let written: (Int64) -> Void

    /// A sink for `assignment`, writing to `fd` (the file at `path`); `progress` counts every
    /// byte received, and `written` hears the length of the file's complete run from byte 0.
    init(
        board: PieceBoard, assignment: PieceBoard.Assignment, fd: Int32, path: String, progress: TransferProgress,
        written: @escaping (Int64) -> Void
    ) {
        self.board = board
        self.piece = assignment.piece
        self.range = assignment.range
        self.fd = fd
        self.path = path
        self.progress = progress
        self.written = written
    }

    /// True when the request asks for less than the whole file.
    var isRanged: Bool { range.lowerBound > 0 || range.upperBound < board.size }

    func begin(_ head: TransferHead) throws {
        if head.status == 206 {
            if let length = head.contentLength, length != Int64(range.count) {
                throw Stop.wrongLength(expected: Int64(range.count), actual: length)
            }
        } else if head.status >= 200 && isRanged && !(head.status == 200 && range.lowerBound == 0) {
            throw Stop.noRangeSupport(status: head.status)
        }
        if let length = head.contentLength { progress.expect(length) }
    }

    func receive(_ chunk: UnsafeRawBufferPointer) throws {
        progress.add(chunk.count)
        let (offset, allowed) = board.reserve(piece, count: chunk.count)
        var done = false
        if allowed > 0 {
            var sent = 0
            while sent < allowed {
                let count = pwrite(fd, chunk.baseAddress! + sent, allowed - sent, off_t(offset) + off_t(sent))
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw SystemError("write \(path)") }
                sent += count
            }
            done = board.commit(piece, count: allowed)
            written(board.contiguous)
        }
        // A piece that ends at the file's end lets its answer end by itself, so that what a
        // source sends after the file (a CAR's extra blocks) is still judged.
        if allowed < chunk.count || (done && offset + Int64(allowed) < board.size) { throw Stop.reached }
    }
}

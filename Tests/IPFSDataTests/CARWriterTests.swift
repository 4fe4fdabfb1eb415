import Foundation
import Glibc
import Testing
@testable import IPFSData

/// The CAR writer streaming to a socket, as the publisher's `dag/import` does.
@Suite struct CARWriterTests {
    /// Writes `blocks` (one twice) through a streamed CAR and returns what the reader got. Both
    /// sides run on threads of their own: a blocked `send` must not hold a cooperative thread.
    func streamed(_ blocks: [(CID, [UInt8])], closeReaderAfter limit: Int? = nil) async -> (bytes: [UInt8], error: String?) {
        await withCheckedContinuation { continuation in
            Thread {
                var ends: [Int32] = [-1, -1]
                precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
                let reader = Reader(fd: ends[0], limit: limit)
                Thread { reader.run() }.start()
                var failure: String?
                do {
                    let writer = try CARWriter(streamingTo: ends[1])
                    for (cid, block) in blocks + [blocks[0]] { try writer.put(cid, block) }
                } catch {
                    failure = "\(error)"
                }
                shutdown(ends[1], Int32(SHUT_WR))
                reader.done.wait()
                close(ends[0])
                close(ends[1])
                continuation.resume(returning: (reader.bytes, failure))
            }.start()
        }
    }

    /// Reads a socket to its end (or up to `limit` bytes, then shuts it).
    final class Reader: @unchecked Sendable {
        let fd: Int32
        let limit: Int?
        /// What was read; complete once `done` is signalled.
        var bytes: [UInt8] = []
        let done = DispatchSemaphore(value: 0)

        init(fd: Int32, limit: Int?) {
            self.fd = fd
            self.limit = limit
        }

        func run() {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while limit.map({ bytes.count < $0 }) ?? true {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                bytes += buffer[..<count]
            }
            if limit != nil { shutdown(fd, Int32(SHUT_RD)) }
            done.signal()
        }
    }

    static func blocks(count: Int, size: Int) -> [(CID, [UInt8])] {
        (0..<count).map { index in
            let block = withUnsafeBytes(of: index) { Array($0) } + [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size)
            return (CID.hashing(block, codec: .raw, version: 1), block)
        }
    }

    @Test func aStreamedCARNamesThePlaceholderRootAndHoldsEachBlockOnce() async throws {
        let blocks = Self.blocks(count: 40, size: 100_000)
        let (bytes, failure) = await streamed(blocks)
        #expect(failure == nil)
        let path = NSTemporaryDirectory() + "stream-\(UUID().uuidString).car"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { unlink(path) }
        let car = try CARReader(path: path)
        #expect(car.roots == [CARWriter.streamPlaceholderRoot])
        #expect(CARWriter.streamPlaceholderRoot.description == "bafkqaaa")
        for (cid, block) in blocks { #expect(try car.block(cid) == block) }
        let header = CARWriter.header(rootBytes: CARWriter.streamPlaceholderRoot.bytes)
        let sections = blocks.reduce(0) { $0 + Varint.encode(UInt64($1.0.bytes.count + $1.1.count)).count + $1.0.bytes.count + $1.1.count }
        #expect(bytes.count == Varint.encode(UInt64(header.count)).count + header.count + sections)  // no block twice
    }

    @Test func aWriterFailsOnceTheReaderHasGoneInsteadOfWaiting() async throws {
        let (bytes, failure) = await streamed(Self.blocks(count: 80, size: 100_000), closeReaderAfter: 300_000)
        #expect(bytes.count >= 300_000 && bytes.count < 8_000_000)
        #expect(failure?.contains("Broken pipe") == true)
    }
}

import CurlTransfer
import Testing
@testable import XferCore

/// libcurl through CurlMulti, on file:// URLs (the protocol pacman's `file://` mirrors use).
@Suite struct TransferTests {
    final class Collector: TransferReceiver, @unchecked Sendable {
        var bytes: [UInt8] = []
        var head: TransferHead?
        func begin(_ head: TransferHead) throws { self.head = head }
        func receive(_ chunk: UnsafeRawBufferPointer) throws { bytes += chunk }
    }

    @Test func runsTransfersInParallelAndResumes() async throws {
        let directory = try TemporaryDirectory()
        let a = pseudoRandomBytes(3_000_000, seed: 1)
        let b = pseudoRandomBytes(2_000_000, seed: 2)
        let pathA = try directory.write("a", a)
        let pathB = try directory.write("b", b)
        async let first = { () async throws -> [UInt8] in
            let collector = Collector()
            _ = try await CurlMulti.shared.perform(TransferRequest(url: "file://\(pathA)"), into: collector)
            return collector.bytes
        }()
        async let second = { () async throws -> [UInt8] in
            let collector = Collector()
            _ = try await CurlMulti.shared.perform(TransferRequest(url: "file://\(pathB)", resumeFrom: 1000), into: collector)
            return collector.bytes
        }()
        #expect(try await first == a)
        #expect(try await second == Array(b[1000...]))
    }

    @Test func missingFilesAndRefusedConnectionsAreErrors() async throws {
        let collector = Collector()
        await #expect(throws: TransferError.self) {
            _ = try await CurlMulti.shared.perform(TransferRequest(url: "file:///nonexistent/x"), into: collector)
        }
        let refused = await #expect(throws: TransferError.self) {
            _ = try await CurlMulti.shared.perform(TransferRequest(url: "http://127.0.0.1:1/x", connectTimeout: 2), into: collector)
        }
        #expect(refused?.isSourceFailure == true)
        #expect(collector.bytes.isEmpty)
    }

    @Test func aReceiverErrorAbortsAndIsRethrown() async throws {
        let directory = try TemporaryDirectory()
        try directory.write("big", pseudoRandomBytes(1_000_000))
        let file = try DownloadFile(path: directory.path + "/sig", expectation: .signature, progress: TransferProgress())
        await #expect(throws: VerificationError.tooLarge(limit: 16 * 1024)) {
            _ = try await CurlMulti.shared.perform(TransferRequest(url: "file://\(directory.path)/big"), into: file)
        }
    }

    @Test func cancellationStopsATransfer() async throws {
        // A listening socket that never answers: the request hangs until cancelled.
        let server = try HangingServer()
        let task = Task {
            try await CurlMulti.shared.perform(
                TransferRequest(url: "http://127.0.0.1:\(server.port)/x", stallTimeout: 60), into: Collector())
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        let start = Monotonic.nanoseconds()
        task.cancel()
        await #expect(throws: TransferError.cancelled) { _ = try await task.value }
        #expect(Monotonic.seconds(since: start) < 2)
    }
}

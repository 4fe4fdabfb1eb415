import Glibc
import IPFSData
import Synchronization

/// One `dag/import` fed while the DAG is being built: blocks go to kubo as they are made.
///
/// A connected socket pair joins the two sides: the RPC call reads one end (libcurl sends it
/// chunked, pausing while nothing is ready), and a streaming ``CARWriter`` writes the other, so
/// nothing is spooled to disk and a slow kubo slows the import down instead of filling memory.
/// When the call ends early (kubo refuses or goes away), the reading end is shut and the writer's
/// next block fails instead of waiting forever.
final class CARUpload: Sendable {
    /// Where the import's blocks go.
    let writer: CARWriter
    private let readEnd: Int32
    private let writeEnd: Int32
    private let call: Task<Result<Void, KuboRPC.Failure>, Never>
    /// Set when the call has ended, before the reading end is shut.
    private let ended = Flag()

    /// A flag the call's task sets.
    private final class Flag: Sendable {
        let value = Atomic(false)
    }

    /// Opens the stream and starts the `dag/import` call.
    init(rpc: KuboRPC) throws(MirrorPublisher.Failure) {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw .io("cannot open the CAR stream: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        var buffer: Int32 = 1 << 20  // fewer wake-ups of the transfer thread per block
        _ = setsockopt(writeEnd, SOL_SOCKET, SO_SNDBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
        do {
            writer = try CARWriter(streamingTo: writeEnd)
        } catch {
            close(readEnd)
            close(writeEnd)
            throw .io("\(error)")
        }
        self.readEnd = readEnd
        self.writeEnd = writeEnd
        let ended = self.ended
        call = Task {
            defer {
                ended.value.store(true, ordering: .sequentiallyConsistent)
                shutdown(readEnd, Int32(SHUT_RD))  // a writer still sending now fails at once
            }
            do throws(KuboRPC.Failure) {
                try await rpc.importCAR(stream: readEnd)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
    }

    /// Ends the CAR and waits for kubo to have imported it.
    func finish() async throws(KuboRPC.Failure) {
        shutdown(writeEnd, Int32(SHUT_WR))
        let result = await call.value
        closeEnds()
        try result.get()
    }

    /// Abandons the import after the building failed. Returns kubo's error when the call had
    /// already failed: a block could not be sent because of it, so it is the reason to report.
    func abandon() async -> KuboRPC.Failure? {
        let callEnded = ended.value.load(ordering: .sequentiallyConsistent)
        if !callEnded { call.cancel() }
        let result = await call.value
        closeEnds()
        guard callEnded, case .failure(let failure) = result else { return nil }
        return failure
    }

    private func closeEnds() {
        close(readEnd)
        close(writeEnd)
    }
}

import CForkReader
import Glibc

/// Runs another program (pacman) to completion, its stdout captured or passed through.
public enum ChildProcess {
    /// How a child ended.
    public enum Status: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)

        /// The exit status a shell would report for it.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
        }
    }

    /// Runs `argv` (searched in PATH) with the caller's stdin and stderr; stdout is captured
    /// when `capture` and passed through otherwise.
    public static func run(_ argv: [String], capture: Bool = false) throws(SystemError) -> (status: Status, output: [UInt8]) {
        var pipeEnds: [Int32] = [-1, -1]
        if capture {
            guard pipe(&pipeEnds) == 0 else { throw SystemError("pipe") }
            for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }  // the child gets stdout only
        }
        let pid = withCStrings(argv) { xfer_spawn($0, pipeEnds[1]) }
        if capture { close(pipeEnds[1]) }
        guard pid > 0 else {
            if capture { close(pipeEnds[0]) }
            throw SystemError("start \(argv[0])")
        }
        var output: [UInt8] = []
        if capture {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                output += buffer[0..<count]
            }
            close(pipeEnds[0])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SystemError("wait for \(argv[0])") }
        }
        let exited = status & 0x7f == 0
        return (exited ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f), output)
    }

    /// Replaces this process with `argv` (searched in PATH); returns only when that failed.
    public static func exec(_ argv: [String]) -> SystemError {
        fflush(nil)
        _ = withCStrings(argv) { execvp(argv[0], $0) }
        return SystemError("run \(argv[0])")
    }

    /// Runs `body` with `strings` as a NULL-terminated C `argv`.
    static func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

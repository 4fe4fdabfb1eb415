import Dispatch
@preconcurrency import Glibc

/// `ipfs-xfer serve`: a local HTTP server pacman uses as its first mirror (or CacheServer),
/// answering `GET /<repo>/os/<arch>/<file>` from IPFS with full verification.
///
/// A file is sent only once it is complete and verified (packages against the sync db), with
/// Range support. When IPFS cannot deliver it within ``XferConfig/serveTimeout`` the answer is a
/// quick 404, so that pacman moves on to its other servers with its own parallel downloads.
/// One thread per connection; connections are kept alive as pacman's curl expects.
public final class CacheServer: Sendable {
    /// Why the server cannot start.
    public enum StartError: Error, CustomStringConvertible, Equatable {
        case badAddress(String)
        case system(SystemError)

        public var description: String {
            switch self {
            case .badAddress(let text): "cannot listen on '\(text)': give an IPv4 address and port such as 127.0.0.1:7878"
            case .system(let error): "\(error)"
            }
        }
    }

    let socket: Int32
    let config: XferConfig
    let store: ServeStore
    let log: @Sendable (String) -> Void
    /// How long an idle kept-alive connection stays open.
    static let idleTimeout: Int = 30

    /// A server on the listening socket `socket`.
    public init(socket: Int32, config: XferConfig, userAgent: String?, log: @escaping @Sendable (String) -> Void) throws(StartError) {
        self.socket = socket
        self.config = config
        self.log = log
        do {
            store = try ServeStore(config: config, userAgent: userAgent, warn: log)
        } catch {
            throw .system(error)
        }
    }

    /// The socket systemd passed (socket activation: `LISTEN_PID` is this process and
    /// `LISTEN_FDS` is at least 1), or nil.
    public static func activatedSocket() -> Int32? {
        guard let pid = getenv("LISTEN_PID").flatMap({ Int32(String(cString: $0)) }), pid == getpid(),
              let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count >= 1
        else { return nil }
        return 3
    }

    /// A listening TCP socket on `address` (`127.0.0.1:7878`).
    public static func listen(on address: String) throws(StartError) -> Int32 {
        let parts = address.split(separator: ":")
        var ip = in_addr()
        guard parts.count == 2, let port = UInt16(parts[1]), inet_pton(AF_INET, String(parts[0]), &ip) == 1 else {
            throw .badAddress(address)
        }
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(SystemError("socket")) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr = ip
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let error = SystemError("listen on \(address)")
            close(fd)
            throw .system(error)
        }
        return fd
    }

    /// Serves until the listening socket fails.
    public func run() async throws {
        try await DedicatedThread.run { self.acceptLoop() }
    }

    /// Accepts connections until the socket fails; each is served on a thread of its own.
    func acceptLoop() {
        while true {
            let connection = accept(socket, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                    if errno == EMFILE || errno == ENFILE { usleep(100_000) }
                    continue
                }
                log("accept failed: \(SystemError("accept"))")
                return
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)  // not for pacman or kubo children
            var timeout = timeval(tv_sec: Self.idleTimeout, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            do {
                try DedicatedThread.detach { self.serve(connection) }
            } catch {
                close(connection)
            }
        }
    }

    /// Answers requests on one connection until the client closes it or asks to.
    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var buffered: [UInt8] = []
        while let head = Self.readHead(connection, buffer: &buffered) {
            let request: HTTPRequest
            do {
                request = try HTTPRequest(head: head)
            } catch {
                _ = Self.send(connection, head: Self.head(status: 400, length: 0, keepAlive: false))
                return
            }
            guard respond(to: request, on: connection), request.keepAlive else { return }
        }
    }

    /// Answers one request; false when the connection must close.
    private func respond(to request: HTTPRequest, on connection: Int32) -> Bool {
        let start = Monotonic.nanoseconds()
        guard request.method == "GET" || request.method == "HEAD" else {
            return Self.send(connection, head: Self.head(status: 405, length: 0, keepAlive: request.keepAlive))
        }
        guard let file = repoFile(request.path) else {
            log("\(request.method) \(request.path) 404 (not a repo file)")
            return Self.send(connection, head: Self.head(status: 404, length: 0, keepAlive: request.keepAlive))
        }
        let ready = Self.wait { await self.store.file(file, path: request.path) }
        guard let ready else {
            log("\(request.method) \(request.path) 404 after \(Self.format(Monotonic.seconds(since: start))) s (IPFS did not deliver it verified in time)")
            return Self.send(connection, head: Self.head(status: 404, length: 0, keepAlive: request.keepAlive))
        }
        defer { if ready.isTemporary { unlink(ready.path) } }
        let fd = open(ready.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, let size = FileSystem.fileSize(ready.path) else {
            if fd >= 0 { close(fd) }
            return Self.send(connection, head: Self.head(status: 404, length: 0, keepAlive: request.keepAlive))
        }
        defer { close(fd) }
        let status: Int
        var offset: Int64 = 0
        var length = size
        var extra: [String] = []
        switch HTTPRequest.range(request.range, size: size) {
        case .whole:
            status = 200
        case .part(let lower, let upper):
            status = 206
            offset = lower
            length = upper - lower + 1
            extra.append("Content-Range: bytes \(lower)-\(upper)/\(size)")
        case .unsatisfiable:
            log("\(request.method) \(request.path) 416")
            return Self.send(connection, head: Self.head(
                status: 416, length: 0, keepAlive: request.keepAlive, extra: ["Content-Range: bytes */\(size)"]))
        }
        guard Self.send(connection, head: Self.head(status: status, length: length, keepAlive: request.keepAlive, extra: extra))
        else { return false }
        if request.method == "GET" && !Self.sendFile(connection, fd: fd, offset: offset, length: length) { return false }
        log("\(request.method) \(request.path) \(status) \(length) B from \(ready.source) in \(Self.format(Monotonic.seconds(since: start))) s")
        return true
    }

    /// The repo file a path names under the configured layout, or nil.
    func repoFile(_ path: String) -> RepoFile? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let name = segments.last, PathSafety.isSafeSegment(String(name)),
              let (repo, arch) = config.layout.match(directorySegments: Array(segments.dropLast())),
              PathSafety.isSafeSegment(repo), arch.isEmpty || PathSafety.isSafeSegment(arch)
        else { return nil }
        return RepoFile(repo: repo, arch: arch, fileName: String(name))
    }

    /// Runs async work from this (non-pool) thread and waits for it.
    private static func wait<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        Task {
            box.value = await work()
            box.done.signal()
        }
        box.done.wait()
        return box.value!
    }

    static func head(status: Int, length: Int64, keepAlive: Bool, extra: [String] = []) -> String {
        let reasons = [200: "OK", 206: "Partial Content", 400: "Bad Request", 404: "Not Found",
                       405: "Method Not Allowed", 416: "Range Not Satisfiable"]
        var lines = ["HTTP/1.1 \(status) \(reasons[status] ?? "Error")", "Content-Length: \(length)", "Accept-Ranges: bytes"]
        if status == 200 || status == 206 { lines.append("Content-Type: application/octet-stream") }
        lines.append(keepAlive ? "Connection: keep-alive" : "Connection: close")
        return (lines + extra).joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// Reads up to the blank line ending a request head (at most 16 KiB); nil at end of stream.
    static func readHead(_ connection: Int32, buffer: inout [UInt8]) -> [UInt8]? {
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let range = buffer.firstRange(of: end) {
                let head = Array(buffer[..<range.lowerBound])
                buffer.removeSubrange(..<range.upperBound)
                return head
            }
            guard buffer.count < 16_384 else { return nil }
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            buffer += chunk[0..<count]
        }
    }

    static func send(_ connection: Int32, head: String) -> Bool {
        var bytes = Array(head.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { Glibc.send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            bytes = bytes.dropFirst(sent)
        }
        return true
    }

    static func sendFile(_ connection: Int32, fd: Int32, offset start: Int64, length: Int64) -> Bool {
        var offset = off_t(start)
        var left = length
        while left > 0 {
            let sent = sendfile(connection, fd, &offset, Int(min(left, 1 << 30)))
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            left -= Int64(sent)
        }
        return true
    }

    static func format(_ seconds: Double) -> String {
        String((seconds * 100).rounded() / 100)
    }
}

/// A value handed from a task to a waiting thread.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    /// Written by the task before it signals `done`; read only after waiting on it.
    var value: T?
    let done = DispatchSemaphore(value: 0)
}

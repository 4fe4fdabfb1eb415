import Testing
@testable import XferCore

@Suite struct ServeTests {
    @Test func requestHead() throws {
        let request = try HTTPRequest(head: Array("GET /core/os/x86_64/a%2Bb-1-1.pkg.tar.zst?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=5-\r\n".utf8))
        #expect(request.method == "GET")
        #expect(request.path == "/core/os/x86_64/a+b-1-1.pkg.tar.zst")
        #expect(request.range == "bytes=5-")
        #expect(request.keepAlive)
        #expect(try !HTTPRequest(head: Array("GET / HTTP/1.0\r\n".utf8)).keepAlive)
        #expect(try !HTTPRequest(head: Array("GET / HTTP/1.1\r\nConnection: close\r\n".utf8)).keepAlive)
        for bad in ["GET /\r\n", "GET x HTTP/1.1\r\n", "GET /%zz HTTP/1.1\r\n", "GET / HTTP/1.1\r\nno colon\r\n", ""] {
            #expect(throws: HTTPRequest.ParseError.malformed) { try HTTPRequest(head: Array(bad.utf8)) }
        }
    }

    @Test(arguments: [
        (nil, HTTPRequest.RangeAnswer.whole), ("bytes=0-99", .part(lower: 0, upper: 99)),
        ("bytes=900-", .part(lower: 900, upper: 999)), ("bytes=-100", .part(lower: 900, upper: 999)),
        ("bytes=-5000", .part(lower: 0, upper: 999)), ("bytes=990-5000", .part(lower: 990, upper: 999)),
        ("bytes=1000-", .unsatisfiable), ("bytes=5-1", .whole), ("bytes=0-1,5-6", .whole), ("items=0-1", .whole),
        ("bytes=x-", .whole),
    ])
    func ranges(header: String?, expected: HTTPRequest.RangeAnswer) {
        #expect(HTTPRequest.range(header, size: 1000) == expected)
    }

    @Test func pathsMapToRepoFilesUnderTheLayout() throws {
        let directory = try TemporaryDirectory()
        var config = XferConfig()
        config.stateDir = directory.path
        let server = try CacheServer(socket: -1, config: config, userAgent: nil, log: { _ in })
        #expect(server.repoFile("/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst")
            == RepoFile(repo: "core", arch: "x86_64", fileName: "a-1-1-x86_64.pkg.tar.zst"))
        #expect(server.repoFile("/lastupdate") == nil)
        #expect(server.repoFile("/core/os/x86_64/..") == nil)
        #expect(server.repoFile("/core/x86_64/a.pkg.tar.zst") == nil)
    }
}

import Glibc
import Testing
@testable import XferCore

@Suite struct SyncTests {
    @Test func refreshIsDoneOnceAndTakenOutOfTheFinalCommand() throws {
        let arguments = try PacmanArguments(["--config", "/c.conf", "-Syyu", "--needed", "-b/db", "firefox", "--", "-odd"])
        #expect(arguments.isSyncTransaction)
        #expect(arguments.refreshCount == 2)
        #expect(arguments.hasWork)
        #expect(arguments.configFile == "/c.conf")
        #expect(arguments.dbPath == "/db")
        #expect(arguments.withoutRefresh() == ["--config", "/c.conf", "-Su", "--needed", "-b/db", "firefox", "--", "-odd"])
        #expect(arguments.printingURLs() == [
            "--config", "/c.conf", "-Su", "--needed", "-b/db", "firefox",
            "--print", "--print-format", "%r %l", "--noconfirm", "--", "-odd",
        ])
    }

    @Test func longFormsAndSeparateValues() throws {
        let arguments = try PacmanArguments(["--sync", "--refresh", "--dbpath", "/d", "--cachedir=/c1", "--cachedir", "/c2", "-r", "/root", "x"])
        #expect(arguments.isSyncTransaction)
        #expect(arguments.refreshCount == 1)
        #expect(arguments.dbPath == "/d")
        #expect(arguments.cacheDirs == ["/c1", "/c2"])
        #expect(arguments.withoutRefresh() == ["--sync", "--dbpath", "/d", "--cachedir=/c1", "--cachedir", "/c2", "-r", "/root", "x"])
    }

    @Test(arguments: [
        (["-Ss", "foo"], false), (["-Sc"], false), (["-Si", "x"], false), (["-Sp", "x"], false), (["-Q"], false),
        (["-R", "x"], false), (["-S", "--print", "x"], false), (["-Sw", "x"], true), (["-Su"], true), (["-Sy"], true),
    ])
    func whichCommandsAreTransactions(arguments: [String], expected: Bool) throws {
        #expect(try PacmanArguments(arguments).isSyncTransaction == expected)
    }

    @Test func refreshAloneHasNoWork() throws {
        #expect(try !PacmanArguments(["-Sy"]).hasWork)
        #expect(try PacmanArguments(["-Sy", "x"]).hasWork)
    }

    @Test func optionWithoutItsValueIsAnError() {
        #expect(throws: PacmanArguments.ParseError.missingValue("--config")) { try PacmanArguments(["-S", "--config"]) }
        #expect(throws: PacmanArguments.ParseError.missingValue("-b")) { try PacmanArguments(["-Sb"]) }
    }

    @Test func packageSignaturesFollowSigLevel() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("pacman.conf", Array("""
            [options]
            SigLevel = Required DatabaseOptional
            [core]
            [extra]
            SigLevel = PackageNever
            [local]
            SigLevel = Never
            [other]
            SigLevel = Never
            SigLevel = PackageOptional
            """.utf8))
        let pacman = PacmanConfig(path: path)
        #expect(pacman.wantsPackageSignatures(repo: "core"))
        #expect(!pacman.wantsPackageSignatures(repo: "extra"))
        #expect(!pacman.wantsPackageSignatures(repo: "local"))
        #expect(pacman.wantsPackageSignatures(repo: "other"))
        let never = PacmanConfig(path: try directory.write("never.conf", Array("[options]\nSigLevel = Never\n[core]\n".utf8)))
        #expect(!never.wantsPackageSignatures(repo: "core"))
        #expect(PacmanConfig(path: "/nonexistent").wantsPackageSignatures(repo: "core"))  // pacman's default: Optional
    }

    @Test func listedLines() {
        #expect(TransactionPrefetch.Listed(line: "core http://m/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst")
            == .init(line: "core http://m/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst"))
        #expect(TransactionPrefetch.Listed(line: "core http://m/a.pkg.tar.zst")?.repo == "core")
        #expect(TransactionPrefetch.Listed(line: "warning: something") == nil)
        #expect(TransactionPrefetch.Listed(line: "") == nil)
    }

    @Test func childProcessStatusAndOutput() throws {
        let echo = try ChildProcess.run(["sh", "-c", "echo hello; exit 3"], capture: true)
        #expect(echo.status == .exited(3))
        #expect(String(decoding: echo.output, as: UTF8.self) == "hello\n")
        let killed = try ChildProcess.run(["sh", "-c", "kill -TERM $$"], capture: true)
        #expect(killed.status == .signalled(SIGTERM))
        #expect(killed.status.shellStatus == 128 + SIGTERM)
        #expect(throws: SystemError.self) { try ChildProcess.run(["/nonexistent/program"]) }
    }

    @Test func segmentBoardHandsOutWaitingThenRunningSegments() {
        let board = SegmentBoard(count: 3, sources: 2)
        #expect(board.next(excluding: nil) == 0)
        #expect(board.next(excluding: nil) == 1)
        #expect(board.next(excluding: nil) == 2)
        // Nothing waits: the least duplicated running segment other than the caller's own.
        #expect(board.next(excluding: 0) == 1)
        board.giveBack(2)  // its only holder failed: waiting again, first
        #expect(board.next(excluding: nil) == 2)
        #expect(board.claim(1))
        #expect(!board.claim(1))  // the duplicate copy is not written
        #expect(board.claim(0))
        #expect(!board.isComplete)
        #expect(board.claim(2))
        #expect(board.isComplete)
        #expect(board.next(excluding: nil) == nil)
        board.credit(1, bytes: 10)
        #expect(board.credits == [0, 10])
        let failed = SegmentBoard(count: 1, sources: 1)
        failed.fail("disk full")
        #expect(failed.next(excluding: nil) == nil && !failed.isComplete && failed.failure == "disk full")
    }
}

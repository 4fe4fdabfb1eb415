import Crypto
import Foundation
@testable import XferCore

/// A directory under /tmp removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "ipfs-xfer-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `bytes` to a file below the directory and returns its path.
    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(
            atPath: FileSystem.directoryName(full), withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
        return full
    }

    func read(_ relative: String) throws -> [UInt8] {
        try FileSystem.readBytes(path + "/" + relative)
    }
}

/// Runs a command and fails the test when it exits non-zero.
func run(_ arguments: [String], in directory: String? = nil) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw SystemError("\(arguments.joined(separator: " ")) exited \(process.terminationStatus)", code: 0)
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E3779B97F4A7C15) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// Lower-case hex SHA-256.
func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// A sync db with `desc` entries for the given packages, made with bsdtar as repo-add makes it.
func makeSyncDatabase(
    in directory: TemporaryDirectory, name: String, packages: [PackageRecord], compression: String
) throws -> String {
    let tree = "tree-" + name.replacingOccurrences(of: "/", with: "-")
    for record in packages {
        let base = record.fileName.components(separatedBy: "-").dropLast().joined(separator: "-")
        let desc = """
        %FILENAME%
        \(record.fileName)

        %NAME%
        \(base.components(separatedBy: "-").dropLast(2).joined(separator: "-"))

        %CSIZE%
        \(record.size)

        %SHA256SUM%
        \(record.sha256)


        """
        try directory.write("\(tree)/\(base)/desc", Array(desc.utf8))
    }
    let output = directory.path + "/" + name
    try FileManager.default.createDirectory(atPath: FileSystem.directoryName(output), withIntermediateDirectories: true)
    try run(["bsdtar", compression, "-cf", output, "-C", directory.path + "/" + tree, "."])
    return output
}

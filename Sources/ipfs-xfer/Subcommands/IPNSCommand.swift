import ArgumentParser
import Glibc
import IPFSData
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer ipns verify`: IPNS records checked as the spec says.
    struct IPNSCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ipns",
            abstract: "Verify IPNS records.",
            subcommands: [Verify.self])
    }
}

extension IPFSXferCommand.IPNSCommand {
    /// `ipns verify RECORD_FILE NAME`: prints the value, sequence, TTL and validity of a valid record.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a serialized IPNS record for a name and print what it points to.",
            discussion: "Prints the value on the first line, then the sequence number, TTL and end of validity. "
                + "Exits 1 when the record is not valid for the name now.")

        @Argument(help: "The record (application/vnd.ipfs.ipns-record bytes).")
        var recordFile: String

        @Argument(help: "The name: k51…, bafz…, 12D3KooW…, Qm… or k2k4r8….")
        var name: String

        func run() throws {
            do {
                let record = try IPNSRecord.verify(
                    try FileSystem.readBytes(recordFile), for: try IPNSName(name), now: Int64(time(nil)))
                print(record.value)
                print("sequence: \(record.sequence)")
                print("ttl: \(Self.seconds(record.ttlNanoseconds))")
                print("valid until: \(record.validity)")
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }

        /// Nanoseconds as seconds, e.g. `300s` or `1.5s`.
        static func seconds(_ nanoseconds: UInt64) -> String {
            let fraction = nanoseconds % 1_000_000_000
            guard fraction > 0 else { return "\(nanoseconds / 1_000_000_000)s" }
            var digits = String(fraction + 1_000_000_000).dropFirst()  // nine digits, leading zeros kept
            while digits.last == "0" { digits = digits.dropLast() }
            return "\(nanoseconds / 1_000_000_000).\(digits)s"
        }
    }
}

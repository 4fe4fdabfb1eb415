import Testing
@testable import IPFSData

/// The IPNS decoders under the property-based fuzzing of `DecoderFuzzTests`: mutated records, data
/// maps, keys, names and timestamps must be refused or accepted cleanly, and a mutated record that
/// still verifies must say what the signed original says.
@Suite struct IPNSFuzzTests {
    @Test func recordsDataMapsAndKeys() async throws {
        let key = TestKey.makeEd25519()
        let rsa = TestKey.sharedRSA
        let v1v2 = TestEntry.signed(by: key)
        let extra = [("_x", TestCBOR.head(4, 2) + TestCBOR.head(1, 3) + TestCBOR.head(6, 42) + TestCBOR.bytes([0]))]
        let seeds = [
            v1v2.encoded, TestEntry.signed(by: key, v1: false, extra: extra).encoded, v1v2.data!, key.protobuf,
            TestEntry.signed(by: rsa, v1: false).encoded, rsa.protobuf,
        ]
        let original = try IPNSRecord.verify(v1v2.encoded, for: key.name, now: TestEntry.now)
        var verified = 0
        let runs = await DecoderFuzzTests.fuzz(seeds, seed: 0x1905) { input in
            for name in [key.name, rsa.name] {
                if let record = try? IPNSRecord.verify(input, for: name, now: TestEntry.now) {
                    #expect(record.value == original.value && record.sequence == original.sequence)
                    verified += 1
                }
            }
            _ = try? IPNSEntry(decoding: input)
            _ = try? IPNSRecordData(decoding: input)
            _ = try? IPNSPublicKey(protobuf: input)
        }
        print("fuzzed IPNS records, data maps and keys with \(runs) inputs (\(verified) still verified)")
    }

    @Test func namesAndTimestamps() async throws {
        let name = TestKey.makeEd25519().name
        let seeds = [
            Array(name.description.utf8), Array(Multibase.base58(name.multihash).utf8),
            Array(TestKey.sharedRSA.name.description.utf8), Array(TestEntry.validity.utf8),
            Array("2123-08-14T12:17:03.694052+05:30".utf8),
        ]
        let runs = await DecoderFuzzTests.fuzz(seeds, seed: 0x3339) { input in
            let text = String(decoding: input, as: UTF8.self)
            if let parsed = try? IPNSName(text) {
                #expect((try? IPNSName(parsed.description)) == parsed)  // what parses re-parses stably
            }
            if let time = RFC3339.parse(text) {
                #expect((0..<1_000_000_000).contains(time.nanoseconds))
            }
        }
        print("fuzzed IPNS names and RFC 3339 timestamps with \(runs) inputs")
    }
}

import Testing
@testable import IPFSData

/// The text form of import parameters: what a mirror's index records and `Import =` reads.
@Suite struct ImportParametersTests {
    @Test func theTextFormRoundTrips() throws {
        for parameters in [ImportParameters.unixfsV0_2015, .unixfsV1_2025] {
            #expect(try ImportParameters(parsing: parameters.description) == parameters)
        }
        #expect(try ImportParameters(parsing: "") == .unixfsV0_2015)
        #expect(try ImportParameters(parsing: "profile=unixfs-v1-2025") == .unixfsV1_2025)
        var custom = ImportParameters.unixfsV0_2015
        custom.cidVersion = 1
        custom.rawLeaves = true
        custom.chunkSize = 1_048_576
        #expect(try ImportParameters(parsing: "profile=default cid-version=1 raw-leaves=true chunker=size-1048576") == custom)
    }

    @Test(arguments: [
        ("profile=fast", "unknown import profile 'fast'"),
        ("cid-version=2", "cid-version must be a number in 0...1"),
        ("raw-leaves=yes", "raw-leaves must be true or false"),
        ("chunker=rabin", "chunker must be size-N"),
        ("chunker=size-4194304", "chunker must be size-N"),
        ("max-links=1", "max-links must be a number"),
        ("size-estimation=guess", "size-estimation must be links or block"),
        ("colour=blue", "unknown import parameter 'colour'"),
        ("cid-version", "'cid-version' is not key=value"),
    ])
    func badTextIsNamed(text: String, message: String) {
        let error = #expect(throws: ImportParameters.ParseError.self) { try ImportParameters(parsing: text) }
        #expect(error?.description.hasPrefix(message) == true, "\(String(describing: error))")
    }
}

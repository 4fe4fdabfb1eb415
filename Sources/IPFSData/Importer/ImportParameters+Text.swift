extension ImportParameters: CustomStringConvertible {
    /// Why an import description was refused.
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var message: String

        public var description: String { message }
    }

    /// The parameters as `key=value` words, the form ``init(parsing:)`` reads: what a mirror's
    /// index records so that clients can import a file exactly as the publisher did.
    public var description: String {
        ["cid-version=\(cidVersion)", "raw-leaves=\(rawLeaves)", "chunker=size-\(chunkSize)", "max-links=\(maxLinks)",
         "size-estimation=\(sizeEstimation.rawValue)", "hamt-threshold=\(hamtThreshold)", "hidden=\(includeHidden)"]
            .joined(separator: " ")
    }

    /// Reads `key=value` words: an optional `profile=<name>` first, then any of the keys of
    /// ``description`` overriding it (kubo's default profile when none is named).
    public init(parsing text: String) throws(ParseError) {
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var parameters = ImportParameters.unixfsV0_2015
        if let first = words.first, first.hasPrefix("profile=") {
            let name = String(first.dropFirst("profile=".count))
            guard let profile = ImportParameters.profiles[name] else {
                throw ParseError(message: "unknown import profile '\(name)' (known: "
                    + ImportParameters.profiles.keys.sorted().joined(separator: ", ") + ")")
            }
            parameters = profile
            words.removeFirst()
        }
        for word in words {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ParseError(message: "'\(word)' is not key=value") }
            let (key, value) = (parts[0], parts[1])
            func number(_ range: ClosedRange<Int>) throws(ParseError) -> Int {
                guard let number = Int(value), range.contains(number) else {
                    throw ParseError(message: "\(key) must be a number in \(range.lowerBound)...\(range.upperBound), not '\(value)'")
                }
                return number
            }
            func flag() throws(ParseError) -> Bool {
                guard let flag = Bool(value) else { throw ParseError(message: "\(key) must be true or false, not '\(value)'") }
                return flag
            }
            switch key {
            case "cid-version": parameters.cidVersion = try number(0...1)
            case "raw-leaves": parameters.rawLeaves = try flag()
            case "chunker":
                guard value.hasPrefix("size-"), let size = Int(value.dropFirst(5)), (1...Self.maximumChunkSize).contains(size)
                else { throw ParseError(message: "chunker must be size-N with 0 < N <= \(Self.maximumChunkSize), not '\(value)'") }
                parameters.chunkSize = size
            case "max-links": parameters.maxLinks = try number(2...65_536)
            case "size-estimation":
                guard let estimation = SizeEstimation(rawValue: value) else {
                    throw ParseError(message: "size-estimation must be links or block, not '\(value)'")
                }
                parameters.sizeEstimation = estimation
            case "hamt-threshold": parameters.hamtThreshold = try number(1...(1 << 30))
            case "hidden": parameters.includeHidden = try flag()
            default: throw ParseError(message: "unknown import parameter '\(key)'")
            }
        }
        self = parameters
    }
}

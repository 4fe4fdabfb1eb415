/// What a sync db says about one package file: enough to verify a download.
public struct PackageRecord: Sendable, Equatable {
    /// `%FILENAME%`.
    public var fileName: String
    /// `%CSIZE%`, the package file's size in bytes.
    public var size: Int64
    /// `%SHA256SUM%`, lower-case hex.
    public var sha256: String
    /// `%NAME%`, the package name (empty when the entry has none).
    public var name: String

    public init(fileName: String, size: Int64, sha256: String, name: String = "") {
        self.fileName = fileName
        self.size = size
        self.sha256 = sha256
        self.name = name
    }

    /// Parses a `desc` entry (`%KEY%` lines followed by values); nil when a field is missing.
    public init?(desc: String) {
        self.init(desc: Array(desc.utf8))
    }

    /// Parses a `desc` entry from its bytes, looking only at the fields a record keeps (a repo's
    /// db has tens of thousands of entries, each with a dozen other fields).
    public init?(desc bytes: [UInt8]) {
        var fileName: String?
        var sizeText: String?
        var sha256: String?
        var name: String?
        var key: ArraySlice<UInt8>?
        var lineStart = 0
        let percent = UInt8(ascii: "%")
        while lineStart <= bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let line = bytes[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            if line.count > 2 && line.first == percent && line.last == percent {
                key = line.dropFirst().dropLast()
            } else if let current = key, !line.isEmpty {
                let value = { String(decoding: line, as: UTF8.self) }
                switch current.count {
                case 8 where current.elementsEqual("FILENAME".utf8): if fileName == nil { fileName = value() }
                case 5 where current.elementsEqual("CSIZE".utf8): if sizeText == nil { sizeText = value() }
                case 9 where current.elementsEqual("SHA256SUM".utf8): if sha256 == nil { sha256 = value() }
                case 4 where current.elementsEqual("NAME".utf8): if name == nil { name = value() }
                default: break
                }
            } else if line.isEmpty {
                key = nil
            }
        }
        guard let fileName, let sizeText, let size = Int64(sizeText), let sha256 = sha256?.lowercased(),
              sha256.utf8.count == 64, sha256.allSatisfy(\.isHexDigit)
        else { return nil }
        self.init(fileName: fileName, size: size, sha256: sha256, name: name ?? "")
    }
}

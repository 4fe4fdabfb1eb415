/// How files and directories are turned into a UnixFS DAG: the settings behind kubo's profiles.
public struct ImportParameters: Sendable, Equatable {
    /// How a directory's size is estimated for the switch to a HAMT.
    public enum SizeEstimation: String, Sendable {
        /// Σ(name length + CID length): kubo's default and unixfs-v0-2015.
        case links
        /// The exact encoded size of the directory node: unixfs-v1-2025.
        case block
    }

    public var cidVersion: Int
    public var rawLeaves: Bool
    public var chunkSize: Int
    public var maxLinks: Int
    public var sizeEstimation: SizeEstimation
    /// A directory whose estimate is greater than this becomes a HAMT (kubo ≥ 0.40 uses `>`).
    public var hamtThreshold = 262_144
    public var hamtFanout = 256
    /// Include names starting with a dot (`ipfs add --hidden`).
    public var includeHidden = false

    public init(cidVersion: Int, rawLeaves: Bool, chunkSize: Int, maxLinks: Int, sizeEstimation: SizeEstimation) {
        self.cidVersion = cidVersion
        self.rawLeaves = rawLeaves
        self.chunkSize = chunkSize
        self.maxLinks = maxLinks
        self.sizeEstimation = sizeEstimation
    }

    /// `unixfs-v0-2015`, which is also kubo's default: CIDv0, 256 KiB chunks, dag-pb leaves, 174 links.
    public static let unixfsV0_2015 = ImportParameters(
        cidVersion: 0, rawLeaves: false, chunkSize: 262_144, maxLinks: 174, sizeEstimation: .links)

    /// `unixfs-v1-2025`: CIDv1, raw leaves, 1 MiB chunks, 1024 links, block-size estimation.
    public static let unixfsV1_2025 = ImportParameters(
        cidVersion: 1, rawLeaves: true, chunkSize: 1_048_576, maxLinks: 1024, sizeEstimation: .block)

    /// The profiles by the names kubo gives them.
    public static let profiles: [String: ImportParameters] = [
        "default": .unixfsV0_2015,
        "unixfs-v0-2015": .unixfsV0_2015,
        "legacy-cid-v0": .unixfsV0_2015,
        "unixfs-v1-2025": .unixfsV1_2025,
    ]

    /// The largest chunk kubo accepts (the block limit is 2 MiB).
    public static let maximumChunkSize = 2 * 1024 * 1024 - 256

    /// The CID version leaves and dag-pb nodes get.
    var leafCodec: CID.Codec { rawLeaves ? .raw : .dagPB }
    var leafVersion: Int { rawLeaves ? 1 : cidVersion }
}

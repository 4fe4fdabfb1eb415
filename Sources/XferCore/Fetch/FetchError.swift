/// Why a file could not be handed to pacman.
public enum FetchError: Error, CustomStringConvertible {
    /// `%o`'s directory is not writable by this user (pacman 7 DownloadUser with the sandbox off).
    case outputNotWritable(directory: String, user: String)
    /// Every source failed; each one's reason, in the order they were tried.
    case allSourcesFailed(file: String, reasons: [String])
    /// A signature every source answered 404 for: the usual answer for Arch's unsigned
    /// databases, which pacman takes as "not signed" (pacman's own downloader says nothing).
    case noSignature(file: String)
    /// The winning file could not be put in place.
    case system(SystemError)

    public var description: String {
        switch self {
        case .outputNotWritable(let directory, let user):
            "cannot write to \(directory) as \(user) (pacman 7: DownloadUser needs its sandbox download "
                + "directory; do not combine DownloadUser with DisableSandbox)"
        case .allSourcesFailed(let file, let reasons):
            "\(file): no source could serve it (\(reasons.joined(separator: "; ")))"
        case .noSignature(let file):
            "\(file): no server has it (404 from every source)"
        case .system(let error):
            error.description
        }
    }
}

/// A mirrorlist `Server` URL with pacman's `$repo` and `$arch` variables, e.g.
/// `https://geo.mirror.pkgbuild.com/$repo/os/$arch`.
public struct ServerTemplate: Sendable, Equatable, CustomStringConvertible {
    private enum Piece: Sendable, Equatable {
        case literal(String)
        case repo
        case arch
    }

    /// The template as written (one trailing slash removed, as pacman does).
    public let text: String
    private let pieces: [Piece]

    /// Splits a template into literal text and variables.
    public init(_ text: String) {
        let text = text.hasSuffix("/") ? String(text.dropLast()) : text
        self.text = text
        var pieces: [Piece] = []
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            let after = rest[dollar...]
            let variable: (Piece, Int)? = after.hasPrefix("$repo") ? (.repo, 5) : after.hasPrefix("$arch") ? (.arch, 5) : nil
            guard let (piece, length) = variable else {
                pieces.append(.literal(String(rest[...dollar])))
                rest = rest[rest.index(after: dollar)...]
                continue
            }
            if dollar > rest.startIndex { pieces.append(.literal(String(rest[..<dollar]))) }
            pieces.append(piece)
            rest = after.dropFirst(length)
        }
        if !rest.isEmpty { pieces.append(.literal(String(rest))) }
        self.pieces = Self.mergingLiterals(pieces)
    }

    private static func mergingLiterals(_ pieces: [Piece]) -> [Piece] {
        var merged: [Piece] = []
        for piece in pieces {
            if case .literal(let next) = piece, case .literal(let previous)? = merged.last {
                merged[merged.count - 1] = .literal(previous + next)
            } else {
                merged.append(piece)
            }
        }
        return merged
    }

    public var description: String { text }

    /// The template with its variables filled in.
    ///
    /// Appended piece by piece: `joined()` would cost pacman's per-file call a protocol-conformance
    /// scan of the whole binary on its first use.
    public func expand(repo: String, arch: String) -> String {
        var expanded = ""
        for piece in pieces {
            switch piece {
            case .literal(let text): expanded += text
            case .repo: expanded += repo
            case .arch: expanded += arch
            }
        }
        return expanded
    }

    /// The URL of `file` on this server.
    public func url(repo: String, arch: String, file: String) -> String {
        expand(repo: repo, arch: arch) + "/" + file
    }

    /// Matches a file URL against the template: `<template>/<file>`.
    ///
    /// Each variable matches one non-empty run without `/`, up to the next literal text.
    public func match(url: String) -> (repo: String, arch: String, file: String)? {
        guard let slash = url.lastIndex(of: "/") else { return nil }
        let directory = Substring(url[..<slash])
        let file = String(url[url.index(after: slash)...])
        var rest = directory
        var repo: String?
        var arch = ""
        for (index, piece) in pieces.enumerated() {
            switch piece {
            case .literal(let text):
                guard rest.hasPrefix(text) else { return nil }
                rest = rest.dropFirst(text.count)
            case .repo, .arch:
                let end: Substring.Index
                if index + 1 < pieces.count, case .literal(let next) = pieces[index + 1] {
                    guard let range = rest.firstRange(ofLiteral: next) else { return nil }
                    end = range.lowerBound
                } else {
                    end = rest.endIndex
                }
                let value = rest[..<end]
                guard !value.isEmpty, !value.contains("/") else { return nil }
                if piece == .repo { repo = String(value) } else { arch = String(value) }
                rest = rest[end...]
            }
        }
        guard rest.isEmpty, let repo else { return nil }
        return (repo, arch, file)
    }
}

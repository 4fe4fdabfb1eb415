// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ipfs-xfer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ipfs-xfer", targets: ["ipfs-xfer"]),
        .library(name: "XferCore", targets: ["XferCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]
        ),
        .systemLibrary(
            name: "CCompression",
            providers: [.apt(["zlib1g-dev", "libzstd-dev", "liblzma-dev", "libbz2-dev"])]
        ),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        .target(name: "CLazyCompression"),
        .target(name: "CForkReader"),
        .target(name: "CResolv", linkerSettings: [.linkedLibrary("resolv")]),
        .target(name: "CCommandLine"),
        .target(
            name: "CurlTransfer",
            dependencies: ["CCurl", "CCurlShim"]
        ),
        .target(
            name: "IPFSData",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "XferCore",
            dependencies: [
                "CurlTransfer",
                "IPFSData",
                "CCompression",
                "CLazyCompression",
                "CForkReader",
                "CResolv",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "ipfs-xfer",
            dependencies: [
                "XferCore",
                "IPFSData",
                "CurlTransfer",
                "CCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // pacman starts ipfs-xfer once per file, and the dynamic loader's work is most of a
            // call: the static Swift runtime's link arguments export all 11 000 symbols of the
            // binary (-export-dynamic), which every symbol lookup of every library and the
            // runtime's dladdr at start-up then search. Nothing here looks them up by name.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"])]
        ),
        .testTarget(
            name: "XferCoreTests",
            dependencies: ["XferCore", "CurlTransfer"]
        ),
        .testTarget(
            name: "IPFSDataTests",
            dependencies: ["IPFSData"]
        ),
    ]
)

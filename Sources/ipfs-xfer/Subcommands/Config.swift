import ArgumentParser
import XferCore

extension IPFSXferCommand {
    /// `ipfs-xfer config`: check the config, or print a commented example.
    struct Config: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration and print the settings in effect, or print an example.")

        @Option(name: .long, help: "The config file (default: /etc/ipfs-xfer.conf when it exists).")
        var config: String?

        @Flag(name: .long, help: "Print a commented example configuration.")
        var example = false

        func run() throws {
            if example {
                print(ExampleConfig.text, terminator: "")
                return
            }
            do {
                let settings = try XferConfig.load(path: config)
                print(settings.summary, terminator: "")
            } catch {
                Diagnostics.error(error)
                throw ExitCode.failure
            }
        }
    }
}

/// How fast a source delivers: how long it takes to start, and its rate once it has.
public struct Speed: Sendable, Equatable {
    public var bytesPerSecond: Double
    /// Seconds from the request to the first byte.
    public var firstByte: Double

    public init(bytesPerSecond: Double, firstByte: Double) {
        self.bytesPerSecond = bytesPerSecond
        self.firstByte = firstByte
    }

    /// What a mirror nothing is known about is taken to do: the HTTP mirrors pacman users
    /// pick are fast, and guessing high only makes the mirror join early and take a larger
    /// share, which the split corrects as soon as it is measured.
    public static let assumedMirror = Speed(bytesPerSecond: 10_000_000, firstByte: 0.2)

    /// The fewest bytes an attempt must move for its speed to be remembered.
    static let minimumSample: Int64 = 64 << 10

    /// Seconds to deliver `bytes` from a standing start.
    public func seconds(for bytes: Int64) -> Double {
        firstByte + Double(bytes) / max(bytesPerSecond, 1)
    }

    /// This speed moved towards `sample`: a weighted mean that follows a change within two or
    /// three calls (a source found slow, then fast again, recovers).
    func smoothed(with sample: Speed) -> Speed {
        let weight = 0.5
        return Speed(
            bytesPerSecond: bytesPerSecond + weight * (sample.bytesPerSecond - bytesPerSecond),
            firstByte: firstByte + weight * (sample.firstByte - firstByte))
    }
}

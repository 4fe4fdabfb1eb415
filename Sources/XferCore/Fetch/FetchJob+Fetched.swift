extension FetchJob {
    /// What one way of fetching the file ended with (segments, a shared download, the whole-file
    /// race): the verified file, if any, and what it taught about the sources.
    struct Fetched: Sendable {
        var delivery: Delivery?
        var healthChanges: [HealthChange] = []
        var speeds: [(key: String, speed: Speed)] = []
        /// Why each source that failed did.
        var reasons: [String] = []
        /// A source was dropped for its answer to a range request: a whole-file race, which
        /// starts over from byte 0 where ranges are refused, may still get the file.
        var rangeRefused = false
        /// Every source that answered said 404.
        var isNowhere = false

        /// True when the whole-file race should still run: nothing was tried, or what failed may
        /// work whole.
        var allowsWholeRace: Bool { reasons.isEmpty || rangeRefused }

        /// Takes on what a later way of fetching found, keeping what this one learnt.
        mutating func add(_ later: Fetched) {
            delivery = later.delivery
            healthChanges += later.healthChanges
            speeds += later.speeds
            reasons += later.reasons
            isNowhere = later.isNowhere
        }
    }
}

import Foundation
import Synchronization

/// Where a department simulator reads the time of day: the system clock, an accelerated clock for
/// demos, or a clock a test moves by hand.
public protocol WallClock: Sendable {
    /// The current instant.
    func now() -> Date

    /// The instant on this clock of a real instant — when a request that arrived at `real`
    /// (stamped by a connector on the system clock) arrived as this department sees time.
    func instant(atRealTime real: Date) -> Date
}

extension WallClock {
    /// The real instant itself: clocks that do not run faster than real time.
    public func instant(atRealTime real: Date) -> Date { real }
}

/// The system's clock.
public struct SystemWallClock: WallClock {
    /// The system's clock.
    public init() {}

    public func now() -> Date { Date() }
}

/// A clock that runs `speed` times faster than the system's, from `start` at the moment it was
/// made — `speed: 86_400` passes a day a second, so decisions due in working days arrive in a demo.
public struct AcceleratedClock: WallClock {
    /// How many simulated seconds pass in one real second.
    public let speed: Double
    /// The simulated instant at `origin`.
    public let start: Date
    /// The real instant the clock was made.
    public let origin: Date

    /// A clock running `speed` times faster than real time, starting at `start`.
    /// - Parameters:
    ///   - speed: simulated seconds per real second (1 is real time). Default: 1.
    ///   - start: the simulated instant now. Default: the real now.
    public init(speed: Double = 1, start: Date = Date()) {
        self.speed = speed
        self.start = start
        self.origin = Date()
    }

    public func now() -> Date { instant(atRealTime: Date()) }

    /// `start + (real − origin) × speed`: a request that arrived a real minute after the clock was
    /// made arrived `speed` simulated minutes after `start`.
    public func instant(atRealTime real: Date) -> Date {
        start.addingTimeInterval(real.timeIntervalSince(origin) * speed)
    }
}

/// A clock that stands still until a test moves it.
public final class ManualClock: WallClock {
    private let current: Mutex<Date>

    /// A clock standing at `date`.
    public init(_ date: Date) {
        current = Mutex(date)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Sets the time.
    public func set(_ date: Date) { current.withLock { $0 = date } }

    /// Moves the time forward by `seconds`.
    public func advance(by seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

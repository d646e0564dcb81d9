import Foundation
import Synchronization

/// OneWindow's one clock: where every part reads the time of day and waits.
///
/// Code that stamps a record, ages a file, decides when something is due or pauses between
/// attempts takes `any WallClock` (default ``SystemWallClock``) instead of calling `Date()` or
/// `Task.sleep`, so a demo can run it faster than real time (``AcceleratedClock``) and a test can
/// move time by hand without waiting (``TestWallClock``).
///
/// ```swift
/// func pollForever(clock: any WallClock = .system) async throws {
///     while true {
///         print("polling at", ChinaTime.rfc3339(clock.now()))
///         try await clock.sleep(for: .seconds(5))
///     }
/// }
/// ```
public protocol WallClock: Sendable {
    /// The current instant on this clock.
    func now() -> Date

    /// Suspends the calling task until `duration` has passed on this clock.
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    func sleep(for duration: Duration) async throws

    /// The instant on this clock of a real instant — when a request that arrived at `real`
    /// (stamped by another process on the system clock) arrived as this clock counts time.
    /// Default: `real` itself, for clocks that run at real speed.
    func instant(atRealTime real: Date) -> Date
}

extension WallClock {
    public func instant(atRealTime real: Date) -> Date { real }

    /// Suspends the calling task until this clock reaches `deadline`; returns at once when it has.
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSince(now())
        guard seconds > 0 else { return }
        try await sleep(for: .seconds(seconds))
    }
}

extension WallClock where Self == SystemWallClock {
    /// The system's clock.
    public static var system: SystemWallClock { SystemWallClock() }
}

/// The system's clock: `Date()` and `Task.sleep`.
public struct SystemWallClock: WallClock {
    /// The system's clock.
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// A clock that runs `speed` times faster than the system's, from `start` at the moment it was
/// made — `speed: 86_400` passes a day a second, so decisions due in working days arrive in a
/// demo. Sleeping for a simulated hour at that speed takes 1/24 of a real second.
public struct AcceleratedClock: WallClock {
    /// How many simulated seconds pass in one real second.
    public let speed: Double
    /// The simulated instant at ``origin``.
    public let start: Date
    /// The real instant the clock was made.
    public let origin: Date

    /// A clock running `speed` times faster than real time, starting at `start`.
    /// - Parameters:
    ///   - speed: simulated seconds per real second, above 0 (1 is real time). Default: 1.
    ///   - start: the simulated instant now. Default: the real now.
    public init(speed: Double = 1, start: Date = Date()) {
        precondition(speed > 0 && speed.isFinite, "an accelerated clock's speed must be above 0, not \(speed)")
        self.speed = speed
        self.start = start
        self.origin = Date()
    }

    public func now() -> Date { instant(atRealTime: Date()) }

    public func sleep(for duration: Duration) async throws {
        let real = duration / .seconds(1) / speed
        guard real > 0 else { return try Task.checkCancellation() }
        try await Task.sleep(for: .seconds(real))
    }

    /// `start + (real − origin) × speed`: a request that arrived a real minute after the clock was
    /// made arrived `speed` simulated minutes after `start`.
    public func instant(atRealTime real: Date) -> Date {
        start.addingTimeInterval(real.timeIntervalSince(origin) * speed)
    }
}

/// A clock that stands still until a test moves it: ``advance(by:)`` and ``advance(to:)`` set
/// the time and resume, in deadline order, every task sleeping on the clock whose deadline has
/// come — without waiting in real time.
///
/// ```swift
/// let clock = TestWallClock(Date(timeIntervalSince1970: 1_750_000_000))
/// let task = Task { try await clock.sleep(for: .seconds(30)); return clock.now() }
/// await clock.advance(by: .seconds(30))   // returns at once; the task wakes up
/// ```
///
/// Written here rather than taken from pointfreeco/swift-clocks' `TestClock`: that clock's
/// `now` is read without its lock (a data race when a woken task reads the time while the test
/// advances it), its instants are offsets rather than dates, and it would add three packages to
/// every production binary for some sixty lines.
public final class TestWallClock: WallClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Date
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [Sleeper] = []
        var nextId: UInt64 = 0
    }

    private let state: Mutex<State>

    /// A clock standing at `start`.
    public init(_ start: Date) {
        state = Mutex(State(now: start))
    }

    public func now() -> Date { state.withLock { $0.now } }

    /// How many tasks are sleeping on the clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Suspends until a test advances the clock by `duration` (at once when it is not positive).
    public func sleep(for duration: Duration) async throws {
        let interval = duration / .seconds(1)
        try Task.checkCancellation()
        guard interval > 0 else { return }
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    // The id was taken before; a cancellation that came in between removed nothing.
                    if Task.isCancelled { return true }
                    state.sleepers.append(
                        Sleeper(id: id, deadline: state.now.addingTimeInterval(interval), continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the time forward by `duration`, waking the sleepers whose deadline it passes.
    public func advance(by duration: Duration) async {
        await advance(to: now().addingTimeInterval(duration / .seconds(1)))
    }

    /// Sets the time to `date` (not earlier than now), resuming in deadline order each sleeper
    /// whose deadline is at or before it, the clock standing at that sleeper's deadline as it is
    /// resumed; then yields so that the woken tasks run on.
    /// - Precondition: `date` is not before ``now()``.
    public func advance(to date: Date) async {
        precondition(date >= now(), "a test clock does not go back: \(date) is before \(now())")
        while true {
            let next = state.withLock { state -> Sleeper? in
                let sleepers = state.sleepers
                guard let index = sleepers.indices.min(by: { sleepers[$0].deadline < sleepers[$1].deadline }),
                    sleepers[index].deadline <= date
                else {
                    state.now = date
                    return nil
                }
                let sleeper = state.sleepers.remove(at: index)
                state.now = max(state.now, sleeper.deadline)
                return sleeper
            }
            guard let next else { break }
            next.continuation.resume()
            await Self.letOthersRun()
        }
        await Self.letOthersRun()
    }

    /// Yields a number of times so that woken tasks run up to their next suspension.
    private static func letOthersRun() async {
        for _ in 0..<50 { await Task.yield() }
    }
}

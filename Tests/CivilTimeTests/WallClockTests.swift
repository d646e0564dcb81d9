import CivilTime
import Foundation
import Synchronization
import Testing

/// What woke, in order.
final class Wakes: Sendable {
    private let names = Mutex<[String]>([])
    func append(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
}

@Suite(.timeLimit(.minutes(1))) struct WallClockTests {
    let start = Date(timeIntervalSince1970: 1_750_000_000)

    @Test func testClockWakesSleepersInDeadlineOrderWithoutRealSleeping() async throws {
        let clock = TestWallClock(start)
        let woken = Wakes()
        let day = Task {
            try await clock.sleep(for: .seconds(86_400))
            woken.append("day")
        }
        let minute = Task {
            try await clock.sleep(for: .seconds(60))
            woken.append("minute")
        }
        while clock.sleeperCount < 2 { await Task.yield() }
        await clock.advance(by: .seconds(59))
        #expect(clock.sleeperCount == 2, "no deadline has come")
        #expect(clock.now() == start.addingTimeInterval(59))
        await clock.advance(by: .seconds(1))
        try await minute.value
        #expect(woken.all == ["minute"])
        #expect(clock.sleeperCount == 1, "the day sleeper sleeps on")
        await clock.advance(by: .seconds(2 * 86_400))
        try await day.value
        #expect(woken.all == ["minute", "day"])
        #expect(clock.now() == start.addingTimeInterval(60 + 2 * 86_400))
        // Two simulated days passed within the suite's one-minute limit: nobody slept for real.
    }

    @Test func sleepingUntilADateAndNotAtAll() async throws {
        let clock = TestWallClock(start)
        try await clock.sleep(for: .zero)
        try await clock.sleep(until: start.addingTimeInterval(-10))
        let task = Task { try await clock.sleep(until: start.addingTimeInterval(30)) }
        while clock.sleeperCount < 1 { await Task.yield() }
        await clock.advance(to: start.addingTimeInterval(30))
        try await task.value
        #expect(clock.sleeperCount == 0)
    }

    @Test func cancellingASleeperEndsItsSleep() async throws {
        let clock = TestWallClock(start)
        let task = Task { try await clock.sleep(for: .seconds(3600)) }
        while clock.sleeperCount < 1 { await Task.yield() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperCount == 0)
        #expect(clock.now() == start, "cancelling does not move the clock")
    }

    @Test func acceleratedClockRunsFasterAndMapsRealInstants() async throws {
        let clock = AcceleratedClock(speed: 86_400, start: start)
        let before = clock.now()
        let real = ContinuousClock.now
        try await clock.sleep(for: .seconds(3600))  // a simulated hour: 1/24 of a real second
        #expect(ContinuousClock.now - real < .seconds(30), "far less than an hour, even on a loaded machine")
        #expect(clock.now().timeIntervalSince(before) >= 3600)
        #expect(clock.instant(atRealTime: clock.origin.addingTimeInterval(1)) == start.addingTimeInterval(86_400))
        #expect(SystemWallClock().instant(atRealTime: start) == start)
    }
}

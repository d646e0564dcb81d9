import Synchronization
import Testing

/// Awaited clean-up for tests: `defer` cannot `await`, and `defer { Task { await … } }` leaves the
/// clean-up running after the test (a connector still polling a log being closed). A test of a
/// suite with this trait calls ``atEnd(_:)`` instead; the clean-ups run, awaited and in reverse
/// order like `defer`s, when the test case ends, whether it passed or threw.
public struct AwaitedCleanup: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public init() {}

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else { return try await function() }
        let list = CleanupList()
        try await CleanupList.$current.withValue(list) {
            do {
                try await function()
            } catch {
                await list.run()
                throw error
            }
            await list.run()
        }
    }
}

extension Trait where Self == AwaitedCleanup {
    /// Runs what the test's ``atEnd(_:)`` calls registered, awaited, when each test case ends.
    public static var awaitedCleanup: Self { Self() }
}

/// The clean-ups registered by the running test case.
final class CleanupList: Sendable {
    @TaskLocal static var current: CleanupList?
    private let items = Mutex<[@Sendable () async -> Void]>([])

    func add(_ work: @escaping @Sendable () async -> Void) { items.withLock { $0.append(work) } }

    func run() async {
        let all = items.withLock { items in
            defer { items = [] }
            return items
        }
        for work in all.reversed() { await work() }
    }
}

/// Registers `work` to run, awaited, when the test case ends (its suite has `.awaitedCleanup`).
public func atEnd(_ work: @escaping @Sendable () async -> Void) {
    guard let list = CleanupList.current else {
        Issue.record("atEnd is called outside a test whose suite has the .awaitedCleanup trait")
        return
    }
    list.add(work)
}

import Dispatch

/// File-system work that blocks a thread — reads, writes, fsyncs, listings, moves — run on a
/// dispatch thread instead of Swift's cooperative pool (two threads on a two-core machine, shared
/// by every part of the connector: a slow disk there would stall the bus clients and HTTP servers).
enum BlockingIO {
    /// Runs `work` on a global dispatch queue and returns (or throws) what it does.
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs `work`, which cannot throw, on a global dispatch queue.
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}

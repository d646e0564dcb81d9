import CivilTime
import Logging
import ServiceLifecycle

/// The one retry loop of the long-running processes (a connector's parts, the orchestrator's
/// consumer, relay and timer loop): it asks ``ErrorDisposition`` what an error means and waits
/// between attempts on the injected clock.
///
/// ```swift
/// let retrier = Retrier(clock: clock, logger: logger) { part in retries.increment(part) }
/// let records = try await retrier.persistently("relay", "publishing the outbox") { try await relayOnce() }
/// ```
///
/// Back-off: ``firstBackoff`` doubling to ``longestBackoff``, slept on ``clock`` (a simulated
/// clock runs it as fast as it runs everything else; a test clock holds it until advanced).
/// One log line when a part pauses (warning) and one when it resumes (notice).
public struct Retrier: Sendable {
    /// Where the back-off is slept.
    public var clock: any WallClock
    public var logger: Logger
    /// The first wait after a failure. Default: 0.5 s.
    public var firstBackoff: Duration
    /// The longest wait; the back-off doubles up to it. Default: 30 s.
    public var longestBackoff: Duration
    /// Called once for every retry with the part's name, for a retries counter.
    public var onRetry: @Sendable (String) -> Void

    public init(
        clock: any WallClock, logger: Logger, firstBackoff: Duration = .milliseconds(500),
        longestBackoff: Duration = .seconds(30), onRetry: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.clock = clock
        self.logger = logger
        self.firstBackoff = firstBackoff
        self.longestBackoff = longestBackoff
        self.onRetry = onRetry
    }

    /// Runs `operation` until it succeeds, retrying what ``ErrorDisposition`` says may succeed
    /// later (the bus or a database unreachable or busy) with exponential back-off.
    ///
    /// A graceful shutdown that begins while an operation keeps failing stops the wait at once
    /// (a notice, then `CancellationError`): nothing was committed for what fails, so the next
    /// start reads it again, and waiting out the back-off would only hold the stop up.
    ///
    /// - Parameters:
    ///   - part: the part of the process, e.g. `table:payments` or `relay` (logs and ``onRetry``).
    ///   - what: what it does, e.g. `polling the bus` (logs and the failure).
    /// - Throws: `CancellationError` when cancelled or stopping; a ``FatalFailure`` for a
    ///   ``ErrorDisposition/fatal`` error; the error itself when it is
    ///   ``ErrorDisposition/deadLetter`` or ``ErrorDisposition/repoll``, for the caller to handle.
    public func persistently<T: Sendable>(_ part: String, _ what: String, _ operation: () async throws -> T)
        async throws -> T
    {
        var backoff = firstBackoff
        var paused = false
        while true {
            do {
                let result = try await operation()
                if paused { logger.notice("\(part): \(what) works again; resuming") }
                return result
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                switch ErrorDisposition.of(error) {
                case .retry:
                    guard !Task.isShuttingDownGracefully else { throw stopWhileFailing(part, what) }
                    if !paused {
                        logger.warning("\(part): \(what) failed, pausing and retrying: \(error)")
                        paused = true
                    } else {
                        logger.debug("\(part): still failing: \(error)")
                    }
                    onRetry(part)
                    do {
                        let wait = backoff
                        try await cancelWhenGracefulShutdown { [clock] in try await clock.sleep(for: wait) }
                    } catch is CancellationError where Task.isShuttingDownGracefully && !Task.isCancelled {
                        throw stopWhileFailing(part, what)
                    }
                    backoff = min(backoff * 2, longestBackoff)
                case .fatal:
                    if let failure = error as? FatalFailure { throw failure }
                    throw FatalFailure(part: part, action: what, underlying: error)
                case .deadLetter, .repoll:
                    if paused { logger.notice("\(part): \(what) now fails otherwise: \(error)") }
                    throw error
                }
            }
        }
    }

    /// The stop of a part asked to shut down while `what` still fails: a notice, and the
    /// cancellation that ends the part (the caller takes it for a stop, not a failure).
    private func stopWhileFailing(_ part: String, _ what: String) -> CancellationError {
        logger.notice(
            "\(part): stopping while \(what) still fails; what it had not committed is read again at the next start")
        return CancellationError()
    }
}

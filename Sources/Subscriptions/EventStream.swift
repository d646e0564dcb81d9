import EventLog
import Logging

/// The body of an SSE response, as chunks of bytes for whatever HTTP server writes them: first a
/// `retry:` field, then each batch's frames as it comes, and a `: keep-alive` comment after
/// `keepAlive` without events.
///
/// The stream ends (after a comment saying why) when the subscription cannot read on or is ended
/// (``Subscription/end()``: the server shuts down): the client reconnects, by itself, with its
/// last event's id and loses nothing. It closes the subscription
/// when it ends, when the task reading it is cancelled, and when its iterator is dropped (a client
/// gone).
public struct ServerSentEventStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    let subscription: Subscription
    let keepAlive: Duration
    let batchSize: Int
    let retry: Duration
    let logger: Logger

    /// - Parameters:
    ///   - keepAlive: the longest quiet time before a comment line. Default: 15 s.
    ///   - batchSize: the most events written at once. Default: 500.
    ///   - retry: what the client is told to wait before reconnecting. Default: 1 s.
    public init(
        _ subscription: Subscription, keepAlive: Duration = .seconds(15), batchSize: Int = 500,
        retry: Duration = .seconds(1), logger: Logger = Logger(label: "onewindow.subscriptions")
    ) {
        self.subscription = subscription
        self.keepAlive = keepAlive
        self.batchSize = batchSize
        self.retry = retry
        self.logger = logger
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self, closer: Closer(subscription))
    }

    /// Releases the subscription's feeds when the last copy of the iterator goes.
    final class Closer: Sendable {
        let subscription: Subscription
        init(_ subscription: Subscription) { self.subscription = subscription }
        deinit { subscription.release() }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: ServerSentEventStream
        let closer: Closer
        var started = false
        var ended = false

        public mutating func next() async throws -> [UInt8]? {
            if ended { return nil }
            if !started {
                started = true
                return ServerSentEvents.retry(stream.retry)
            }
            do {
                let batch = try await stream.subscription.nextFrames(max: stream.batchSize, wait: stream.keepAlive)
                if batch.events > 0 { return batch.frames }
                if stream.subscription.hasEnded {
                    ended = true
                    await stream.subscription.close()
                    return ServerSentEvents.comment("the server is shutting down; reconnect with Last-Event-ID to resume")
                }
                return ServerSentEvents.comment()
            } catch is CancellationError {
                ended = true
                await stream.subscription.close()
                return nil
            } catch {
                ended = true
                await stream.subscription.close()
                stream.logger.warning(
                    "a subscriber's stream ends: the log could not be read; the client resumes from its last id",
                    metadata: ["error": "\(error)"])
                return ServerSentEvents.comment("the stream ends: \(error); reconnect with Last-Event-ID to resume")
            }
        }
    }
}

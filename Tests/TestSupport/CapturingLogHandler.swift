import Logging
import Synchronization

/// Log lines a ``CapturingLogHandler`` received, for tests that check what a part logs.
public final class CapturedLines: Sendable {
    /// One line: its level, message and metadata (values as text).
    public struct Line: Sendable {
        public let level: Logger.Level
        public let message: String
        public let metadata: [String: String]
    }
    private let lines = Mutex<[Line]>([])

    public init() {}

    func add(_ line: Line) { lines.withLock { $0.append(line) } }

    /// Every line so far, in order.
    public var all: [Line] { lines.withLock { $0 } }
}

/// A swift-log handler that keeps every line, at every level:
/// `Logger(label: "test") { _ in CapturingLogHandler(lines) }`.
public struct CapturingLogHandler: LogHandler {
    let lines: CapturedLines
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(_ lines: CapturedLines) { self.lines = lines }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        lines.add(
            CapturedLines.Line(
                level: event.level, message: "\(event.message)", metadata: (event.metadata ?? [:]).mapValues { "\($0)" }))
    }
}

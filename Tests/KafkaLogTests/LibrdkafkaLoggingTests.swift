import EventLog
import Foundation
import KafkaLog
import Logging
import Synchronization
import Testing

/// librdkafka's own log lines go through swift-log, to the configuration's logger. Needs no
/// broker: the lines come from connecting to a closed port.
@Suite("librdkafka logging", .timeLimit(.minutes(1)))
struct LibrdkafkaLoggingTests {
    @Test func aRefusedConnectionIsLoggedThroughSwiftLog() async throws {
        let lines = KafkaCapturedLines()
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"])
        configuration.requestTimeout = .seconds(2)
        configuration.logger = Logger(label: "test.librdkafka") { _ in KafkaCapturingHandler(lines) }
        let log = try KafkaLog(configuration: configuration)
        await #expect(throws: LogError.self) { _ = try await log.listTopics() }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while !lines.all.contains(where: { $0.message.contains("127.0.0.1:1") }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        await log.close()
        let refused = try #require(
            lines.all.first { $0.message.contains("127.0.0.1:1") }, "a line about the closed port, got \(lines.all.map(\.message))")
        #expect(refused.level >= .warning, "a failed connection is a warning or worse: \(refused.level)")
        #expect(refused.metadata["facility"]?.isEmpty == false)
        #expect(refused.metadata["client"]?.hasPrefix("onewindow") == true, "\(refused.metadata)")
    }
}

/// Log lines a test handler received.
final class KafkaCapturedLines: Sendable {
    struct Line: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }
    private let lines = Mutex<[Line]>([])
    func add(_ line: Line) { lines.withLock { $0.append(line) } }
    var all: [Line] { lines.withLock { $0 } }
}

/// A swift-log handler that keeps every line.
struct KafkaCapturingHandler: LogHandler {
    let lines: KafkaCapturedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    init(_ lines: KafkaCapturedLines) { self.lines = lines }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.add(
            KafkaCapturedLines.Line(
                level: event.level, message: "\(event.message)", metadata: (event.metadata ?? [:]).mapValues { "\($0)" }))
    }
}

import EventLog
import Foundation
import KafkaLog
import Logging
import Synchronization
import TestSupport
import Testing
/// librdkafka's own log lines go through swift-log, to the configuration's logger. Needs no
/// broker: the lines come from connecting to a closed port.
@Suite("librdkafka logging", .timeLimit(.minutes(1)))
struct LibrdkafkaLoggingTests {
    @Test func aRefusedConnectionIsLoggedThroughSwiftLog() async throws {
        let lines = CapturedLines()
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"])
        configuration.requestTimeout = .seconds(2)
        configuration.logger = Logger(label: "test.librdkafka") { _ in CapturingLogHandler(lines) }
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

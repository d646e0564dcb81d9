import EventLog
import Foundation
@testable import KafkaLog
import Logging
import Synchronization
import TestSupport
import Testing
/// librdkafka's own log lines go through swift-log, to the configuration's logger. Needs no
/// broker: the lines come from connecting to a closed port. One test at a time: a line of a
/// client still being created goes to the logger of the latest client being created, which may be
/// the other test's.
@Suite("librdkafka logging", .serialized, .timeLimit(.minutes(1)))
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

    /// A consumer dropped by its owner is closed and destroyed on its own queue; `onewindow` waits
    /// for that before it exits (``KafkaTeardown``), since exiting while librdkafka destroys a
    /// client can crash the process. A group member against a closed port: closing it has no
    /// coordinator to leave, and its destroy still takes librdkafka's threads a while.
    @Test func aDroppedConsumerIsDestroyedBeforeTheWaitReturns() async throws {
        // Port 2, not 1: the lines of the test above are about port 1.
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:2"])
        configuration.requestTimeout = .seconds(2)
        // A label of its own: other tests make and destroy clients at the same time.
        let label = "test.teardown.\(UUID().uuidString)"
        configuration.logger = Logger(label: label) { _ in SwiftLogNoOpLogHandler() }
        let log = try KafkaLog(configuration: configuration)
        let before = LibrdkafkaLogging.registered(label: label)
        var consumer: (any LogConsumer)? = try await log.makeConsumer(
            ConsumerConfiguration(subscription: .pattern("teardown-.*"), group: "teardown-test"))
        #expect(LibrdkafkaLogging.registered(label: label) == before + 1)
        _ = try? await consumer?.poll(maxRecords: 1, timeout: .milliseconds(100))
        consumer = nil
        #expect(KafkaTeardown.wait(upTo: .seconds(30)), "the dropped consumer's destroy finished in time")
        #expect(KafkaTeardown.waitsAtExit, "a process that destroyed a client waits for the others at exit")
        #expect(LibrdkafkaLogging.registered(label: label) == before, "its client is destroyed when the wait returns")
        await log.close()
    }

    /// Two clients created at once on two threads: the one started first ends first, and the
    /// lines of the other, still being created, still go to that other's logger.
    @Test func overlappingCreationsKeepEachOthersLoggers() {
        // Labels of their own: other tests create clients at the same time.
        let first = Logger(label: "test.creation.first.\(UUID().uuidString)")
        let second = Logger(label: "test.creation.second.\(UUID().uuidString)")
        let firstStarted = DispatchSemaphore(value: 0), secondStarted = DispatchSemaphore(value: 0)
        let firstEnded = DispatchSemaphore(value: 0), secondChecked = DispatchSemaphore(value: 0)
        let seen = Mutex<String?>(nil)
        Thread.detachNewThread {
            LibrdkafkaLogging.creating(first) {
                firstStarted.signal()
                secondStarted.wait()
            }
            firstEnded.signal()
        }
        Thread.detachNewThread {
            firstStarted.wait()
            LibrdkafkaLogging.creating(second) {
                secondStarted.signal()
                firstEnded.wait()
                seen.withLock { $0 = LibrdkafkaLogging.logger(for: nil).label }
            }
            secondChecked.signal()
        }
        secondChecked.wait()
        #expect(seen.withLock { $0 } == second.label)
        #expect(
            LibrdkafkaLogging.creationsUnderWay(label: first.label) + LibrdkafkaLogging.creationsUnderWay(label: second.label)
                == 0, "both creations are forgotten")
    }
}

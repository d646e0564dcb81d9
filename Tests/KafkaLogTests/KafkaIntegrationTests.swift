import EventLog
import EventModel
import Foundation
import KafkaLog
import Synchronization
import Testing
import TestSupport

/// The Kafka backend against a real Kafka-protocol broker, and against an independent client.
@Suite("Kafka backend integration", .timeLimit(.minutes(3)))
struct KafkaIntegrationTests {
    static func bootstrap() throws -> String {
        guard let value = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] else {
            throw TestFailure("ONEWINDOW_TEST_KAFKA is not set: run the tests with `make test`, which starts the broker")
        }
        return value
    }

    static func log(_ bootstrap: String) throws -> KafkaLog {
        var configuration = KafkaConfiguration(bootstrapServers: [bootstrap])
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        return try KafkaLog(configuration: configuration)
    }

    let event = Event(
        id: "interop-1", type: "household.birth.registered", source: "/departments/household-registry",
        subject: "440604202501150134", time: Date(timeIntervalSince1970: 1_736_900_000.25),
        data: Data(#"{"child":{"name":"李子轩"}}"#.utf8), correlationId: "RA-2025-000123", causationId: "evt-0")

    @Test func whatTheHubWritesKcatReadsWithTheCloudEventsHeaders() async throws {
        let bootstrap = try Self.bootstrap()
        let log = try Self.log(bootstrap)
        let topic = "interop.hub-to-kcat.\(UUID().uuidString.prefix(8).lowercased())"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        _ = try await log.append([CloudEventsBinding.record(for: event, topic: topic)])
        await log.close()

        // `-m 30`: kcat's own metadata time-out (5 s) ran out twice on 2026-11-29 while make test's
        // first run started its hundred tests at once on two cores ("Local: Timed out").
        let output = try await run(
            "kcat", ["-b", bootstrap, "-m", "30", "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
        let line = try #require(output.split(separator: "\n").first, "kcat printed nothing")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(json["key"] as? String == "440604202501150134")
        #expect(json["payload"] as? String == #"{"child":{"name":"李子轩"}}"#)
        let flat = try #require(json["headers"] as? [String], "kcat -J prints headers as [name, value, …]")
        var headers: [String: String] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) { headers[flat[index]] = flat[index + 1] }
        #expect(headers["ce_id"] == "interop-1")
        #expect(headers["ce_type"] == "household.birth.registered")
        #expect(headers["ce_source"] == "/departments/household-registry")
        #expect(headers["ce_specversion"] == "1.0")
        #expect(headers["ce_time"] == "2025-01-15T00:13:20.250Z")
        #expect(headers["ce_correlationid"] == "RA-2025-000123")
        #expect(headers["content-type"] == "application/json")
        #expect(json["ts"] as? Int == 1_736_900_000_250, "the record timestamp is the event time")
    }

    @Test func whatKcatWritesTheHubReadsAsTheSameEvent() async throws {
        let bootstrap = try Self.bootstrap()
        let log = try Self.log(bootstrap)
        let topic = "interop.kcat-to-hub.\(UUID().uuidString.prefix(8).lowercased())"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        var arguments = ["-b", bootstrap, "-m", "30", "-P", "-t", topic, "-k", "440604202501150134"]
        for (name, value) in [
            ("ce_specversion", "1.0"), ("ce_id", "interop-1"), ("ce_source", "/departments/household-registry"),
            ("ce_type", "household.birth.registered"), ("ce_subject", "440604202501150134"),
            ("ce_time", "2025-01-15T00:13:20.250Z"), ("content-type", "application/json"),
            ("ce_correlationid", "RA-2025-000123"), ("ce_causationid", "evt-0"),
        ] {
            arguments += ["-H", "\(name)=\(value)"]
        }
        _ = try await run("kcat", arguments, input: event.data)
        let records = try await log.read(TopicPartition(topic, 0), from: 0, maxRecords: 10)
        try #require(records.count == 1)
        #expect(try CloudEventsBinding.event(from: records[0]) == event)
        await log.close()
    }

    /// Closing the log with appends in flight: every append finishes (with its positions, or a
    /// `.closed` error for one that came too late), what succeeded is in the log, and an append
    /// after the close is refused.
    @Test func appendsInFlightWhenTheLogClosesAllFinish() async throws {
        let bootstrap = try Self.bootstrap()
        let log = try Self.log(bootstrap)
        let topic = "close.in-flight.\(UUID().uuidString.prefix(8).lowercased())"
        try await log.createTopics([TopicSpec(name: topic, partitions: 3)])
        let closing = Flag()
        let outcomes = try await withThrowingTaskGroup(of: (succeeded: Bool, afterCloseBegan: Bool).self) { group in
            for writer in 0..<16 {
                group.addTask {
                    let records = (0..<250).map {
                        OutgoingRecord(topic: topic, key: "w\(writer)-\($0 % 5)", value: Data(repeating: 0x61, count: 500))
                    }
                    do {
                        let positions = try await log.append(records)
                        #expect(positions.count == records.count)
                        return (true, closing.isSet)
                    } catch let error as LogError {
                        #expect(error.code == .closed, "a healthy broker fails an append only for the close: \(error)")
                        return (false, closing.isSet)
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(20))
            closing.set()
            await log.close()
            var outcomes: [(succeeded: Bool, afterCloseBegan: Bool)] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.count == 16, "every append finished")
        #expect(outcomes.contains { $0.afterCloseBegan }, "some appends were still in flight when the log closed")
        do {
            _ = try await log.append([OutgoingRecord(topic: topic, key: "late", value: Data("late".utf8))])
            Issue.record("an append after close succeeded")
        } catch let error as LogError {
            #expect(error.code == .closed)
        }
        // What the appends reported as written is there, and nothing else.
        let reader = try Self.log(bootstrap)
        let stored = try await readTopic(reader, topic).count
        #expect(stored == outcomes.filter(\.succeeded).count * 250)
        await reader.close()
    }

    @Test func anUnreachableBrokerIsReportedAsSuch() async throws {
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"])
        configuration.requestTimeout = .seconds(2)
        let log = try KafkaLog(configuration: configuration)
        do {
            _ = try await log.listTopics()
            Issue.record("listing topics on a closed port succeeded")
        } catch let error as LogError {
            #expect(error.code == .brokerUnreachable)
            #expect(error.isRetriable)
            #expect(error.backendName?.hasPrefix("RD_KAFKA_RESP_ERR__") == true)
            #expect(error.description.contains("reachable"))
        }
        await log.close()
    }

    @Test func aWrongPropertyIsRefusedWithItsName() {
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        configuration.properties["sasl.mechanisms"] = "SCRAM-SHA-512"
        configuration.properties["security.protocol"] = "NOT_A_PROTOCOL"
        #expect {
            _ = try KafkaLog(configuration: configuration)
        } throws: { error in
            "\(error)".contains("security.protocol")
        }
    }
}

/// A flag set once, read from several tasks.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program found on PATH and returns its standard output; fails on a non-zero exit.
func run(_ program: String, _ arguments: [String], input: Data? = nil) async throws -> String {
    let result = try await runProgram(program, arguments, input: input)
    guard result.status == 0 else {
        throw TestFailure("\(program) exited with \(result.status): \(String(decoding: result.error, as: UTF8.self))")
    }
    return String(decoding: result.output, as: UTF8.self)
}

import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestSupport

/// Floods (issue 12): refusing bad input must cost no more than accepting good input, so that a
/// department sending garbage cannot starve the good stream. Through the validated publisher
/// (what every connector, `onewindow publish` and the front desk publish through) on an embedded
/// log, refusals dead-lettered as connectors do: good events alone, garbage alone (the hostile
/// corpus's refused event bodies, cycled), and good events while a garbage flood runs beside them.
enum FloodBenchmark {
    struct Result {
        var goodPerSecond: Double
        var garbagePerSecond: Double
        var goodBesideGarbagePerSecond: Double
        var garbageBesideGoodPerSecond: Double
        var garbageKinds: Int
        var count: Int
        var batch: Int
    }

    /// `count` distinct valid tax payments.
    static func good(_ count: Int, offset: Int) throws -> [Publication] {
        guard var body = catalog.schemas["tax.payment.received"]?.examples.first else {
            throw SupportError("tax.payment.received has no example")
        }
        return (0..<count).map { index in
            body.set(.string(String(format: "3440662599%08d", offset + index)), at: "/voucherNumber")
            body.set(.integer(Int64(1000 + index)), at: "/amountFen")
            return Publication(
                event: Event(
                    id: "flood-good-\(offset + index)", type: "tax.payment.received", source: "/bench/flood",
                    subject: nil, data: body.serialized()))
        }
    }

    /// `count` refused events: the corpus's bad event bodies under 64 KiB, cycled (the larger ones
    /// are too large for one batch's dead letters, which connectors send alone).
    static func garbage(_ count: Int) -> (publications: [Publication], kinds: Int) {
        let bad = HostileCorpus.all.filter {
            $0.entry == "event" && !$0.expect.accepted && $0.goes(to: "publisher") && $0.bytes.count < 65_536
        }
        let bodies = bad.map { ($0, $0.bytes) }
        let publications = (0..<count).map { index in
            let (record, bytes) = bodies[index % bodies.count]
            return Publication(
                event: Event(
                    id: "flood-bad-\(index)", type: record.type ?? "", source: "/bench/flood",
                    subject: record.header("ce-subject"), data: bytes),
                topic: record.topic.flatMap { $0.isEmpty ? nil : $0 })
        }
        return (publications, Set(bad.map(\.kind)).count)
    }

    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))

    /// Publishes in batches of `batch`, dead-lettering refusals; the seconds it took.
    static func run(_ publisher: Publisher, _ publications: [Publication], batch: Int) async throws -> Double {
        let clock = ContinuousClock()
        let elapsed = try await clock.measure {
            for start in stride(from: 0, to: publications.count, by: batch) {
                _ = try await publisher.publish(
                    Array(publications[start..<min(start + batch, publications.count)]), deadLetter: true)
            }
        }
        return elapsed.seconds
    }

    static func measure(directory: URL, count: Int, batch: Int = 100) async throws -> Result {
        func log(_ name: String) async throws -> EmbeddedLog {
            let log = try EmbeddedLog(
                path: directory.appendingPathComponent("flood-\(name).sqlite").path,
                configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
            _ = try await log.createTopics(catalog.topicSpecs)
            return log
        }
        let (garbage, kinds) = Self.garbage(count)
        // Alone, each on a fresh log.
        let goodLog = try await log("good")
        let goodSeconds = try await run(
            Publisher(log: goodLog, catalog: catalog, name: "flood"), try good(count, offset: 0), batch: batch)
        await goodLog.close()
        let badLog = try await log("garbage")
        let garbageSeconds = try await run(Publisher(log: badLog, catalog: catalog, name: "flood"), garbage, batch: batch)
        await badLog.close()
        // Side by side on one log: the good stream's rate while the flood runs.
        let mixedLog = try await log("mixed")
        let publisher = Publisher(log: mixedLog, catalog: catalog, name: "flood")
        let goodAgain = try good(count, offset: count)
        async let goodBeside = run(publisher, goodAgain, batch: batch)
        async let garbageBeside = run(publisher, garbage, batch: batch)
        let (goodMixed, garbageMixed) = try await (goodBeside, garbageBeside)
        let published = try await readTopic(mixedLog, "tax.payment.received").count
        await mixedLog.close()
        guard published == count else {
            throw SupportError("the flood run published \(published) good events of \(count)")
        }
        return Result(
            goodPerSecond: Double(count) / goodSeconds, garbagePerSecond: Double(count) / garbageSeconds,
            goodBesideGarbagePerSecond: Double(count) / goodMixed,
            garbageBesideGoodPerSecond: Double(count) / garbageMixed, garbageKinds: kinds, count: count, batch: batch)
    }
}

import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import SharedView
import TestSupport

/// The shared view's figures: facts ingested per second from the topics, subjects compared per
/// second, and the p99 of a recorded by-ID read with `residents` residents in the view.
enum SharedViewBenchmark {
    static let catalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let rules = try! ViewRules.load(
        path: repositoryRoot.appendingPathComponent("Rules/shared-view.yaml").path, catalog: catalog)
    static let comparison = try! ComparisonRules.load(
        path: repositoryRoot.appendingPathComponent("Rules/comparison.yaml").path, view: rules)

    /// A valid resident ID for a number below 10 million.
    static func resident(_ number: Int) -> String {
        let birth = CivilDate(daysSinceEpoch: 3650 + number % 10_000)
        return ResidentIDNumber.make(
            region: String(440600 + (number / 10_000_000) % 10 + 4), birthDate: (birth.year, birth.month, birth.day),
            sequence: (number / 10_000) % 1000)
    }

    /// The first ten thousand birth days times a thousand sequences: 10 million distinct IDs.
    static func body(_ kind: Int, _ number: Int) -> (topic: String, body: String) {
        let id = resident(number)
        switch kind % 3 {
        case 0:
            return (
                "household.move.registered",
                #"{"residentId":"\#(id)","name":"居民\#(number)","direction":"in","toAddress":"佛山市禅城区季华五路22号人才公寓5栋803","reason":"graduate","householdNumber":"4406040\#(String(format: "%05d", number % 100_000))","registeredAt":"2026-01-05T09:00:00+08:00"}"#
            )
        case 1:
            return (
                "socialsecurity.contribution.paid",
                #"{"residentId":"\#(id)","scheme":"employee-pension","period":"2026-01","baseFen":680000,"employeeFen":54400,"employerFen":95200,"paidAt":"2026-02-10T16:05:00+08:00"}"#
            )
        default:
            return (
                "socialsecurity.pension.certified",
                #"{"residentId":"\#(id)","name":"居民\#(number)","year":2026,"method":"face-recognition","certifiedAt":"2026-03-02T09:12:00+08:00"}"#
            )
        }
    }

    static func records(_ range: Range<Int>) -> [OutgoingRecord] {
        range.map { index in
            let (topic, body) = body(index, index / 3)
            let event = Event(
                id: "view-bench-\(index)", type: topic, source: "bench", subject: nil,
                time: Date(timeIntervalSince1970: 1_767_000_000 + Double(index)), data: Data(body.utf8))
            return CloudEventsBinding.record(for: event, topic: topic)
        }
    }

    /// `facts` records on the topics (a third each of moves, contributions, certifications), then
    /// timed from the consumer's start until the last one is in the store.
    static func ingest(directory: URL, facts: Int) async throws -> Measurement {
        let log = try EmbeddedLog(
            path: directory.appendingPathComponent("view-bus.sqlite").path,
            configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
        _ = try await log.createTopics(catalog.topicSpecs)
        for start in stride(from: 0, to: facts, by: 10_000) {
            _ = try await log.append(records(start..<min(start + 10_000, facts)))
        }
        let engine = SharedViewEngine(
            store: try SharedViewStore(path: directory.appendingPathComponent("view-ingest.sqlite").path),
            rules: rules, log: log, catalog: catalog)
        let seconds = try await time {
            let task = Task { try await engine.runConsumer(maxRecords: 2000) }
            while engine.stats.snapshot.factsIngested < facts { try await Task.sleep(for: .milliseconds(5)) }
            task.cancel()
            try await task.value
        }
        await log.close()
        return Measurement(name: "shared view ingest (group consumer, one transaction per batch of 2,000)", events: facts, seconds: seconds)
    }

    /// A store with `residents` residents, two facts each, written directly (not timed).
    static func seed(_ path: String, residents: Int) async throws -> SharedViewStore {
        let store = try SharedViewStore(path: path)
        for start in stride(from: 0, to: residents * 2, by: 20_000) {
            var facts: [IncomingFact] = []
            for index in start..<min(start + 20_000, residents * 2) {
                let number = index / 2
                let (topic, body) = body(index % 2, number)
                facts.append(
                    IncomingFact(
                        subject: resident(number), kind: index % 2 == 0 ? "household-record" : "social-insurance-contributions",
                        qualifier: index % 2 == 0 ? "" : "employee-pension", eventId: "seed-\(index)", topic: topic,
                        department: index % 2 == 0 ? "household-registry" : "social-security",
                        timeMilliseconds: 1_767_000_000_000 + Int64(index), body: Data(body.utf8)))
            }
            try await store.upsert(facts)
        }
        return store
    }

    /// The p99 (and median) of `reads` recorded `latestFact` reads of random residents, in milliseconds.
    static func lookup(store: SharedViewStore, residents: Int, reads: Int) async throws -> (p50: Double, p99: Double) {
        var generator = SystemRandomNumberGenerator()
        var samples: [Double] = []
        samples.reserveCapacity(reads)
        let clock = ContinuousClock()
        for _ in 0..<reads {
            let subject = resident(Int.random(in: 0..<residents, using: &generator))
            let elapsed = try await clock.measure {
                let fact = try await store.latestFact(
                    kind: "household-record", subject: subject, reader: "bench", reason: "p99 lookup")
                precondition(fact != nil, "no fact for \(subject)")
            }
            samples.append(elapsed.seconds * 1000)
        }
        samples.sort()
        return (samples[reads / 2], samples[min(reads - 1, reads * 99 / 100)])
    }

    /// `compare --all` over `residents` residents with three facts each (a third of them disagreeing
    /// on the name), alerts published to an embedded log.
    static func compare(directory: URL, residents: Int) async throws -> (Measurement, Int) {
        let store = try SharedViewStore(path: directory.appendingPathComponent("view-compare.sqlite").path)
        let log = try EmbeddedLog(
            path: directory.appendingPathComponent("view-compare-bus.sqlite").path,
            configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
        _ = try await log.createTopics(catalog.topicSpecs)
        for start in stride(from: 0, to: residents * 3, by: 30_000) {
            var facts: [IncomingFact] = []
            for index in start..<min(start + 30_000, residents * 3) {
                let number = index / 3
                var (topic, body) = body(index % 3, number)
                if index % 3 == 2, number % 300 == 0 { body = body.replacingOccurrences(of: "居民", with: "居明") }
                facts.append(
                    IncomingFact(
                        subject: resident(number), kind: rules.kinds(onTopic: topic)[0].name,
                        qualifier: index % 3 == 1 ? "employee-pension" : "", eventId: "compare-\(index)", topic: topic,
                        department: catalog.topic(named: topic)!.owner, timeMilliseconds: 1_767_000_000_000 + Int64(index),
                        body: Data(body.utf8)))
            }
            try await store.upsert(facts)
        }
        let engine = SharedViewEngine(store: store, rules: rules, comparison: comparison, log: log, catalog: catalog)
        let run = try await engine.compareAll()
        await log.close()
        return (
            Measurement(name: "compare --all (\(format(Double(residents))) residents, 3 facts each)", events: run.subjects, seconds: run.seconds),
            run.newAlerts
        )
    }
}

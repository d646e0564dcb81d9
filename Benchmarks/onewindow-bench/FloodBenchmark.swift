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
        /// CPU of the whole process per record in the runs alone (validation, dead letters, the
        /// log's append and SQLite), microseconds: unlike the rates, barely moved by other processes.
        var goodCPUMicroseconds: Double
        var garbageCPUMicroseconds: Double
        /// Thread CPU per record of the publisher's own work alone (``Publisher/records(for:deadLetter:)``:
        /// parse, validate, build the record or the dead letter), microseconds, the median of five rounds.
        var goodWorkMicroseconds: Double
        var garbageWorkMicroseconds: Double
        /// The same for the corpus's good events, of the same types as the garbage (the good
        /// stream's tax payments are the smallest type).
        var corpusGoodWorkMicroseconds: Double
        /// A second comparison beside the first, not instead of it: the corpus's good events of the
        /// garbage's five types, published alone on a fresh log like the others (the good stream's
        /// tax payments are the smallest type, and the garbage's bodies are larger still).
        var corpusGoodPerSecond: Double
        var corpusGoodCPUMicroseconds: Double
        var corpusGoodBytes: Double
        /// The same for each kind of garbage, costliest first.
        var kindWorkMicroseconds: [(kind: String, microseconds: Double)]
        /// Bytes appended per record (value, key and headers): the dead letters against the good events.
        var goodBytes: Double
        var garbageBytes: Double
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
        let bad = badRecords()
        return (cycled(bad, count, prefix: "flood-bad"), Set(bad.map(\.kind)).count)
    }

    /// `count` accepted events: the corpus's good event bodies for the publisher (the types the
    /// garbage has), cycled.
    static func corpusGood(_ count: Int) -> [Publication] {
        cycled(
            HostileCorpus.all.filter { $0.entry == "event" && $0.expect.accepted && $0.goes(to: "publisher") }, count,
            prefix: "flood-corpus-good")
    }

    /// `count` publications of the corpus records' bodies, types, subjects and topics, cycled, each
    /// with an id of its own (`prefix-index`).
    static func cycled(_ records: [HostileRecord], _ count: Int, prefix: String) -> [Publication] {
        let bodies = records.map { ($0, $0.bytes) }
        return (0..<count).map { index in
            let (record, bytes) = bodies[index % bodies.count]
            return Publication(
                event: Event(
                    id: "\(prefix)-\(index)", type: record.type ?? "", source: "/bench/flood",
                    subject: record.header("ce-subject"), data: bytes),
                topic: record.topic.flatMap { $0.isEmpty ? nil : $0 })
        }
    }

    /// The corpus's refused event bodies for the publisher under 64 KiB, in corpus order.
    static func badRecords() -> [HostileRecord] {
        HostileCorpus.all.filter {
            $0.entry == "event" && !$0.expect.accepted && $0.goes(to: "publisher") && $0.bytes.count < 65_536
        }
    }

    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))

    /// Publishes in batches of `batch`, dead-lettering refusals; the seconds it took and the process's
    /// CPU seconds in that time.
    static func run(_ publisher: Publisher, _ publications: [Publication], batch: Int) async throws
        -> (seconds: Double, cpu: Double)
    {
        let clock = ContinuousClock()
        let cpuBefore = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID)
        let elapsed = try await clock.measure {
            for start in stride(from: 0, to: publications.count, by: batch) {
                _ = try await publisher.publish(
                    Array(publications[start..<min(start + batch, publications.count)]), deadLetter: true)
            }
        }
        return (elapsed.seconds, cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - cpuBefore)
    }

    /// Thread CPU microseconds per publication of the publisher's work without the log, in batches
    /// of `batch` as ``run(_:_:batch:)`` publishes them: the median of `rounds` rounds.
    static func work(_ publisher: Publisher, _ publications: [Publication], batch: Int, rounds: Int = 5) throws -> Double {
        var perRound: [Double] = []
        for _ in 0..<rounds {
            let before = cpuSeconds(CLOCK_THREAD_CPUTIME_ID)
            for start in stride(from: 0, to: publications.count, by: batch) {
                _ = try publisher.records(
                    for: Array(publications[start..<min(start + batch, publications.count)]), deadLetter: true)
            }
            perRound.append((cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - before) / Double(max(publications.count, 1)) * 1e6)
        }
        return perRound.sorted()[rounds / 2]
    }

    /// Bytes per record of what publishing `publications` appends.
    static func bytes(_ publisher: Publisher, _ publications: [Publication]) throws -> Double {
        let records = try publisher.records(for: publications, deadLetter: true).records
        let total = records.reduce(0) { sum, record in
            sum + record.value.count + (record.key?.count ?? 0)
                + record.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.count }
        }
        return Double(total) / Double(max(records.count, 1))
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
        let goodOnes = try good(count, offset: 0)
        // The publisher's own work, on this thread, without the log.
        let bare = Publisher(log: try await log("work"), catalog: catalog, name: "flood")
        let sample = min(count, 10_000)
        let goodWork = try work(bare, Array(goodOnes.prefix(sample)), batch: batch)
        let garbageWork = try work(bare, Array(garbage.prefix(sample)), batch: batch)
        let corpusGoodWork = try work(bare, corpusGood(sample), batch: batch)
        // One cycle of the corpus by kind (publication i holds the body of bad record i % its count).
        let bad = badRecords()
        var byKind: [String: [Publication]] = [:]
        for (index, publication) in garbage.prefix(bad.count).enumerated() {
            byKind[bad[index].kind, default: []].append(publication)
        }
        let kindWork = try byKind.map { kind, publications in
            (kind: kind, microseconds: try work(bare, Array(repeating: publications, count: 20).flatMap { $0 }, batch: batch))
        }.sorted { $0.microseconds > $1.microseconds }
        let goodBytes = try bytes(bare, Array(goodOnes.prefix(sample)))
        let garbageBytes = try bytes(bare, Array(garbage.prefix(sample)))
        // Alone, each on a fresh log.
        let goodLog = try await log("good")
        let goodRun = try await run(Publisher(log: goodLog, catalog: catalog, name: "flood"), goodOnes, batch: batch)
        await goodLog.close()
        let badLog = try await log("garbage")
        let garbageRun = try await run(Publisher(log: badLog, catalog: catalog, name: "flood"), garbage, batch: batch)
        await badLog.close()
        let corpusGoodOnes = corpusGood(count)
        let corpusGoodBytes = try bytes(bare, Array(corpusGoodOnes.prefix(sample)))
        let corpusLog = try await log("corpus-good")
        let corpusGoodRun = try await run(Publisher(log: corpusLog, catalog: catalog, name: "flood"), corpusGoodOnes, batch: batch)
        await corpusLog.close()
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
            goodPerSecond: Double(count) / goodRun.seconds, garbagePerSecond: Double(count) / garbageRun.seconds,
            goodBesideGarbagePerSecond: Double(count) / goodMixed.seconds,
            garbageBesideGoodPerSecond: Double(count) / garbageMixed.seconds,
            goodCPUMicroseconds: goodRun.cpu / Double(count) * 1e6,
            garbageCPUMicroseconds: garbageRun.cpu / Double(count) * 1e6,
            goodWorkMicroseconds: goodWork, garbageWorkMicroseconds: garbageWork,
            corpusGoodWorkMicroseconds: corpusGoodWork, corpusGoodPerSecond: Double(count) / corpusGoodRun.seconds,
            corpusGoodCPUMicroseconds: corpusGoodRun.cpu / Double(count) * 1e6, corpusGoodBytes: corpusGoodBytes,
            kindWorkMicroseconds: kindWork,
            goodBytes: goodBytes, garbageBytes: garbageBytes, garbageKinds: kinds, count: count, batch: batch)
    }


    /// The publisher's work alone on one stream (`good`, `garbage` or `corpus-good`, the second
    /// comparison's) for about ten seconds; with `+log` (`good+log`, `garbage+log`…), the whole
    /// publication, the log's append included.
    static func profile(_ stream: String, directory: URL) async throws {
        let log = try EmbeddedLog(
            path: directory.appendingPathComponent("flood-profile.sqlite").path,
            configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
        let withLog = stream.hasSuffix("+log")
        if withLog { _ = try await log.createTopics(catalog.topicSpecs) }
        let publisher = Publisher(log: log, catalog: catalog, name: "flood")
        let publications =
            stream.hasPrefix("good")
            ? try good(10_000, offset: 0) : stream.hasPrefix("corpus-good") ? corpusGood(10_000) : garbage(10_000).publications
        let end = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < end {
            if withLog {
                _ = try await run(publisher, publications, batch: 100)
            } else {
                _ = try work(publisher, publications, batch: 100, rounds: 1)
            }
        }
        await log.close()
    }
}

import EventLog
import EventModel
import Foundation
import Orchestrator
@testable import OrchestratorService
import Testing

/// The consumer plans a batch from several partitions in two halves at once (``PlanningInHalves``),
/// and writes them as one plan: the store must end as with the batch planned on one thread.
@Suite("Batches planned in two halves by partition")
struct PlanningInHalvesTests {
    /// A record on `partition` at `offset` (only where it is matters to the split).
    static func record(_ partition: Int, _ offset: Int64) -> LogRecord {
        LogRecord(
            topic: "t", partition: partition, offset: offset, timestamp: Date(timeIntervalSince1970: 0), key: nil,
            value: Data(), headers: [])
    }

    @Test("Each partition goes whole to one half, records keep their order, and the halves are balanced")
    func split() {
        let partitions = [0, 1, 0, 2, 1, 0, 3, 0, 1, 2, 0, 4]
        let records = partitions.enumerated().map { Self.record($0.element, Int64($0.offset)) }
        let split = PlanningInHalves(records)
        #expect(split.halves.count == 2)
        #expect(split.sides.count == records.count)
        for half in split.halves {
            #expect(half.map(\.offset) == half.map(\.offset).sorted(), "a half keeps the order polled")
        }
        let zero = Set(split.halves[0].map(\.partition)), one = Set(split.halves[1].map(\.partition))
        #expect(zero.isDisjoint(with: one), "a partition is in one half only")
        #expect(zero.union(one) == Set(partitions))
        // Largest first into the lighter half: 0 (5 records) to the first, 1 (3) and 2 (2) to the
        // second, 3 to the first (5 against 5: the first), 4 to the second: 6 and 6.
        #expect(split.halves.map(\.count) == [6, 6])
        #expect(Set(split.halves[0].map(\.partition)) == [0, 3])
        for (index, record) in records.enumerated() {
            #expect(split.halves[split.sides[index]].contains { $0.offset == record.offset })
        }
    }

    @Test("A small batch, or one from a single partition, is one half")
    func oneHalf() {
        let few = (0..<(PlanningInHalves.minimumRecords - 1)).map { Self.record($0 % 3, Int64($0)) }
        #expect(PlanningInHalves(few).halves.count == 1)
        let onePartition = (0..<20).map { Self.record(2, Int64($0)) }
        #expect(PlanningInHalves(onePartition).halves.count == 1)
        #expect(PlanningInHalves(onePartition).halves[0].map(\.offset) == (0..<20).map(Int64.init))
    }

    /// Submits `count` restaurant applications and polls their records, not applied.
    static func submitted(_ bench: Bench, _ engine: OrchestratorEngine, count: Int, consumer: any LogConsumer)
        async throws -> [LogRecord]
    {
        for number in 1...count { try await bench.submit(Repo.restaurant(id: String(format: "RA-2026-%06d", 700 + number))) }
        return try await poll(consumer, count)
    }

    @Test("A batch planned in halves writes the cases and requests a batch planned record by record does")
    func sameAsOneByOne() async throws {
        let halved = try await Bench(), single = try await Bench()
        let halvedEngine = try halved.engine(), singleEngine = try single.engine()
        let halvedConsumer = try await halved.log.makeConsumer(
            .group(OrchestratorEngine.group, topics: halvedEngine.topics))
        let singleConsumer = try await single.log.makeConsumer(
            .group(OrchestratorEngine.group, topics: singleEngine.topics))
        defer {
            Task {
                await halvedConsumer.close()
                await singleConsumer.close()
            }
        }
        let records = try await Self.submitted(halved, halvedEngine, count: 16, consumer: halvedConsumer)
        #expect(PlanningInHalves(records).halves.count == 2, "16 applications span more than one partition")
        let outcome = try await halvedEngine.process(records)
        #expect(outcome.applied == 16 && outcome.replanned == 0 && outcome.deadLettered == 0)
        for record in try await Self.submitted(single, singleEngine, count: 16, consumer: singleConsumer) {
            try await singleEngine.process([record])
        }
        while try await halvedEngine.relayOnce() > 0 {}
        while try await singleEngine.relayOnce() > 0 {}
        let halvedRequests = try await halved.requests().map { [$0.id, String(decoding: $0.data, as: UTF8.self)] }
        let singleRequests = try await single.requests().map { [$0.id, String(decoding: $0.data, as: UTF8.self)] }
        #expect(halvedRequests.count == 16)
        #expect(
            halvedRequests.sorted { $0.lexicographicallyPrecedes($1) }
                == singleRequests.sorted { $0.lexicographicallyPrecedes($1) })
        for number in 1...16 {
            let id = String(format: "RA-2026-%06d", 700 + number)
            let one = try #require(try halvedEngine.store.findCase(id)), other = try #require(try singleEngine.store.findCase(id))
            #expect(one.0 == other.0, "the case of \(id)")
        }
    }

    @Test(
        "One event id on two partitions, planned in both halves, is applied once: the write finds it and plans the batch again in the order polled"
    )
    func oneIdOnTwoPartitions() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }
        // Two applications on different partitions, submitted under one event id.
        let submissions = try await Self.submitted(bench, engine, count: 30, consumer: consumer)
        let byPartition = Dictionary(grouping: submissions, by: \.partition)
        let crowded = try #require(byPartition.max { $0.value.count < $1.value.count })
        try #require(crowded.value.count >= 7, "30 applications on 6 partitions put 7 on one")
        let other = try #require(byPartition.keys.first { $0 != crowded.key })
        func application(on partition: Int) -> String {
            (1...10_000).lazy.map { String(format: "RA-2026-%06d", 800_000 + $0) }.first {
                Partitioner.partition(forKey: Data($0.utf8), partitions: 6) == partition
            }!
        }
        let first = application(on: crowded.key), second = application(on: other)
        for id in [first, second] {
            let body = Repo.restaurant(id: id)
            _ = try await bench.publisher.publish(
                Event(
                    id: "forged-submission", type: "application.restaurant.submitted", source: "test-window",
                    subject: nil, time: bench.clock.now(), data: body.serialized()))
        }
        // The log hands partitions over in an order of its own: find each copy by its partition.
        let forged = try await poll(consumer, 2)
        #expect(Set(forged.map(\.partition)) == [crowded.key, other], "the forged pair is where it was meant to be")
        let onCrowded = try #require(forged.first { $0.partition == crowded.key })
        let onOther = try #require(forged.first { $0.partition == other })
        // The pair, the one on the quiet partition first, then six more of the crowded partition:
        // the pair in different halves, the one polled first in the second half.
        let batch = [onOther, onCrowded] + crowded.value.prefix(6)
        let split = PlanningInHalves(batch)
        #expect(split.halves.count == 2 && split.sides[0] == 1 && split.sides[1] == 0)
        let outcome = try await engine.process(batch)
        #expect(outcome.replanned == 1)
        #expect(outcome.applied == 7 && outcome.duplicates == 1)
        #expect(try engine.store.findCase(second) != nil, "the first polled is applied")
        #expect(try engine.store.findCase(first) == nil, "the second polled, a repeat of its id, is not")
    }
}

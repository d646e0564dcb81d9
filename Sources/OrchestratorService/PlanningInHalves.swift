import EventLog

/// A polled batch split in two by partition, for the consumer to decode and plan both halves at
/// once on two threads (``OrchestratorEngine/prepare(_:)``), then write them as one plan
/// (``BatchPlan/init(merging:sides:)``) in one transaction.
///
/// Planning a batch — decoding and validating its records, the core, the cases' JSON and the
/// emissions' validation — took about half the wall time of the fixed-rate benchmark on one thread,
/// while the process used about 0.8 of the machine's two cores on average, and each input waited
/// for the whole batch before it.
///
/// Why a split by partition is sound: all of an application's inputs are on one partition number
/// (every input topic is keyed by application id with one partition count), so each application's
/// inputs stay in one half, in their order, and a case is planned by one half only. An event id
/// repeated within one partition is skipped there as before. Records with one id on two partitions
/// (a forged or mistaken id) are planned in both halves; the write finds the second id applied
/// and plans the whole batch again inside its transaction, in order, as for any redelivery
/// (``OrchestratorStore/commit(_:core:checker:writeCPU:committed:)``).
struct PlanningInHalves {
    /// Fewer records than this are planned on one thread, where the second thread's hand-off
    /// would be most of the saving (a judgement, not a measured threshold).
    static let minimumRecords = 8

    /// The halves' records, each in the order polled.
    let halves: [[LogRecord]]
    /// For each record polled, in order, the half it went to.
    let sides: [Int]

    /// `records` in two halves by partition: the partitions taken largest first, each into the
    /// half with fewer records so far. One half (the records as given) when there are fewer than
    /// ``minimumRecords`` or one partition.
    init(_ records: [LogRecord]) {
        var counts: [Int: Int] = [:]
        for record in records { counts[record.partition, default: 0] += 1 }
        guard records.count >= Self.minimumRecords, counts.count > 1 else {
            halves = [records]
            sides = Array(repeating: 0, count: records.count)
            return
        }
        var sizes = [0, 0]
        var half: [Int: Int] = [:]
        for (partition, count) in counts.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
            let lighter = sizes[0] <= sizes[1] ? 0 : 1
            half[partition] = lighter
            sizes[lighter] += count
        }
        var halves: [[LogRecord]] = [[], []]
        halves[0].reserveCapacity(sizes[0])
        halves[1].reserveCapacity(sizes[1])
        var sides: [Int] = []
        sides.reserveCapacity(records.count)
        for record in records {
            let side = half[record.partition] ?? 0
            halves[side].append(record)
            sides.append(side)
        }
        self.halves = halves
        self.sides = sides
    }
}

extension BatchPlan {
    /// One plan writing what `parts` write, part after part (each part's rows and cases
    /// together): the plans of a batch's halves (``PlanningInHalves``), made at the same time
    /// after the same previous plan. Its batch is the parts' inputs in the order polled
    /// (`sides`: for each input polled, the part it went to), so that planning it again inside the
    /// transaction plans it as a batch planned on one thread would be.
    init(merging parts: [BatchPlan], sides: [Int]) {
        var next = Array(repeating: 0, count: parts.count)
        var batch: [PendingInput] = []
        batch.reserveCapacity(sides.count)
        for side in sides {
            batch.append(parts[side].batch[next[side]])
            next[side] += 1
        }
        self.init(batch: batch, now: parts.first?.now ?? .distantPast)
        for part in parts {
            applied += part.applied
            outbox += part.outbox
            cases += part.cases
            workflows += part.workflows
            outcome.add(part.outcome)
        }
    }
}

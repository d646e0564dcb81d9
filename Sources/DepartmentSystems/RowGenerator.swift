import CivilTime
import EventLog
import EventSchemas
import Foundation
import GRDB
import Synchronization

/// How a generated row was spoiled, so that the connector must dead-letter it.
public enum BadRowKind: String, Sendable, Hashable, CaseIterable {
    /// A resident ID number or credit code with a wrong check character.
    case corruptedCheckCharacter = "corrupted-check-character"
    /// NULL in a column whose event field is required.
    case nullRequiredField = "null-required-field"
    /// A date that is not a date: `20240231`, `20251301`, `abc`.
    case invalidDate = "invalid-date"
}

/// A row the generator spoiled on purpose.
public struct BadRow: Sendable, Hashable {
    /// The table.
    public var table: String
    /// The row's `id`.
    public var id: Int64
    /// How it was spoiled.
    public var kind: BadRowKind
    /// The spoiled column.
    public var column: String
}

/// What a generator wrote.
public struct GenerationReport: Sendable, Hashable {
    /// Rows inserted.
    public var inserted = 0
    /// Of those, rows spoiled on purpose.
    public var bad = 0
    /// Existing rows updated (a new `version` and `change_seq`).
    public var updated = 0
    /// Inserts and updates per table.
    public var byTable: [String: Int] = [:]
    /// The spoiled rows (kept for the first 10,000).
    public var badRows: [BadRow] = []

    /// Inserts and updates.
    public var written: Int { inserted + updated }

    /// Creates an empty report.
    public init() {}

    mutating func add(_ other: GenerationReport) {
        inserted += other.inserted
        bad += other.bad
        updated += other.updated
        byTable.merge(other.byTable, uniquingKeysWith: +)
        if badRows.count < 10_000 { badRows += other.badRows.prefix(10_000 - badRows.count) }
    }
}

/// When a generator run ends.
public enum GenerationLimit: Sendable, Hashable {
    /// After this many rows (inserts and updates).
    case count(Int)
    /// After this much time.
    case duration(Duration)
    /// Only when stopped.
    case unlimited
}

/// Writes realistic rows into a department's source tables — births, deaths, moves, enrolments,
/// contributions, tax payments, contracts, licences… — at a given rate, for load tests and demos:
/// batched per transaction at high rates, with a given fraction of deliberately bad rows, and
/// updates of existing rows (a new `version` and `change_seq`) at a small fraction.
///
/// ```swift
/// let generator = try RowGenerator(database: db, options: .init(tables: ["birth_registrations"], badFraction: 0.01))
/// let report = try await generator.write(100_000)          // as fast as it goes
/// try await generator.run(rate: 500, limit: .duration(.seconds(60)), shouldStop: { false })
/// ```
///
/// Bad rows are spread exactly: after `n` inserts, `Int(Double(n) * badFraction)` are bad; the
/// same holds for updates with `updateFraction`. Every row's `change_seq` is `MAX + 1` inside its
/// transaction, so it grows strictly with every write.
public final class RowGenerator: Sendable {
    /// What to generate.
    public struct Options: Sendable {
        /// The tables to write; `nil` means every source table of the department. Default: `nil`.
        public var tables: [String]?
        /// The fraction of inserted rows spoiled on purpose (0…1). Default: 0.
        public var badFraction: Double
        /// The fraction of writes that update an existing row instead of inserting one. Default: 0.02.
        public var updateFraction: Double
        /// The random seed: the same seed writes the same rows. Default: 1.
        public var seed: UInt64
        /// The most rows written in one transaction. Default: 5,000.
        public var maxBatch: Int

        /// Options; every parameter has the default its property documents.
        public init(
            tables: [String]? = nil, badFraction: Double = 0, updateFraction: Double = 0.02, seed: UInt64 = 1,
            maxBatch: Int = 5_000
        ) {
            self.tables = tables
            self.badFraction = badFraction
            self.updateFraction = updateFraction
            self.seed = seed
            self.maxBatch = maxBatch
        }
    }

    struct State: Sendable {
        var context: RowContext
        var inserts = 0
        var writes = 0
        var bad = 0
        var updates = 0
    }

    /// The department's database.
    public let database: DepartmentDatabase
    /// The options.
    public let options: Options
    let specs: [TableSpec]
    let clock: any WallClock
    private let state: Mutex<State>
    private let total = Mutex(GenerationReport())

    /// A generator for a department's database.
    /// - Parameters:
    ///   - world: the residents, companies and properties rows refer to. Default: the seed world.
    ///   - clock: the time stamped on rows. Default: the system clock.
    /// - Throws: ``DepartmentSimulatorError`` for a table that is not a source table of the department.
    public init(
        database: DepartmentDatabase, options: Options = Options(), world: SyntheticWorld = SyntheticWorld(),
        clock: any WallClock = .system
    ) throws {
        let all = RowFactory.specs(for: database.system.id)
        let chosen = options.tables.map { names in all.filter { names.contains($0.table) } } ?? all
        if let names = options.tables, let unknown = names.first(where: { name in !all.contains { $0.table == name } })
        {
            let tables = all.map(\.table).joined(separator: ", ")
            throw DepartmentSimulatorError("\(unknown) is not a source table of \(database.system.id) (\(tables))")
        }
        guard !chosen.isEmpty else {
            throw DepartmentSimulatorError("\(database.system.id) has no tables to generate rows in")
        }
        guard (0...1).contains(options.badFraction), (0...1).contains(options.updateFraction) else {
            throw DepartmentSimulatorError("the bad and update fractions must be between 0 and 1")
        }
        self.database = database
        self.options = options
        self.specs = chosen
        self.clock = clock
        let now = clock.now()
        state = Mutex(
            State(
                context: RowContext(
                    rng: SeededGenerator(seed: options.seed), world: WorldPools(world, today: CivilDate.china(now)),
                    now: now,
                    serial: Int(options.seed % 1000) * 1000)))
    }

    /// Everything written so far.
    public var report: GenerationReport { total.withLock { $0 } }

    /// Writes `count` rows (inserts and updates) as fast as the database takes them, in
    /// transactions of at most ``Options/maxBatch`` rows.
    /// - Returns: what this call wrote.
    /// - Throws: a database error; the transactions before it stay written.
    @discardableResult
    public func write(_ count: Int) async throws -> GenerationReport {
        var report = GenerationReport()
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, options.maxBatch)
            report.add(try await writeBatch(batch))
            remaining -= batch
        }
        return report
    }

    /// Writes rows at `rate` rows a second until `limit` or until `shouldStop` says so (checked
    /// between transactions: a transaction under way is finished).
    /// - Parameters:
    ///   - rate: rows per second; `.infinity` for as fast as possible.
    ///   - progress: called about every `progressInterval` with the totals.
    /// - Returns: what this run wrote.
    public func run(
        rate: Double, limit: GenerationLimit, progressInterval: Duration = .seconds(5),
        shouldStop: @Sendable () -> Bool, progress: @Sendable (GenerationReport) -> Void = { _ in }
    )
        async throws -> GenerationReport
    {
        // The rate is rows per real second, whatever the department's clock: paced on the real one.
        let clock = ContinuousClock()
        let start = clock.now
        var lastProgress = start
        var report = GenerationReport()
        let countLimit: Int? = if case .count(let count) = limit { count } else { nil }
        let deadline: ContinuousClock.Instant? =
            if case .duration(let duration) = limit { start + duration } else { nil }
        // A transaction holds at most a tenth of a second's rows, so the rate stays smooth.
        let batchLimit = rate.isFinite ? max(1, min(options.maxBatch, Int(rate / 10))) : options.maxBatch
        while !shouldStop() {
            let now = clock.now
            if let deadline, now >= deadline { break }
            if let countLimit, report.written >= countLimit { break }
            var due = options.maxBatch
            if rate.isFinite {
                let elapsed = (now - start).seconds
                due = Int(elapsed * rate) + 1 - report.written
            }
            if let countLimit { due = min(due, countLimit - report.written) }
            if due <= 0 {
                let wait = max(0.001, Double(report.written) / rate - (now - start).seconds)
                try await Task.sleep(for: .milliseconds(Int(min(wait, 0.1) * 1000) + 1))
                continue
            }
            report.add(try await writeBatch(min(due, batchLimit)))
            if clock.now - lastProgress >= progressInterval {
                lastProgress = clock.now
                progress(report)
            }
        }
        return report
    }

    /// One transaction of `count` rows.
    func writeBatch(_ count: Int) async throws -> GenerationReport {
        let specs = self.specs
        let options = self.options
        var current = state.withLock { $0 }
        current.context.setNow(clock.now())
        let start = current
        let (next, report) = try await database.writer.write { db in
            var state = start
            let report = try Self.write(count, specs: specs, options: options, state: &state, db: db)
            return (state, report)
        }
        state.withLock { $0 = next }
        total.withLock { $0.add(report) }
        return report
    }

    static func write(
        _ count: Int, specs: [TableSpec], options: Options, state: inout State, db: Database
    ) throws
        -> GenerationReport
    {
        var report = GenerationReport()
        var maxIds: [Int64] = []
        var inserts: [Statement] = []
        var updates: [Statement] = []
        for spec in specs {
            maxIds.append(try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM \(quoted(spec.table))") ?? 0)
            inserts.append(try db.cachedStatement(sql: spec.insertSQL))
            updates.append(try db.cachedStatement(sql: spec.updateSQL))
        }
        let modified = ChinaTime.local(state.context.now).databaseValue
        for _ in 0..<count {
            let which = specs.count == 1 ? 0 : state.context.rng.below(specs.count)
            let spec = specs[which]
            state.writes += 1
            let wantsUpdate = Int(Double(state.writes) * options.updateFraction) > state.updates
            if wantsUpdate, maxIds[which] > 0 {
                state.updates += 1
                let id = 1 + Int64(state.context.rng.below(Int(maxIds[which])))
                try updates[which].execute(arguments: [modified, id])
                report.updated += 1
                report.byTable[spec.table, default: 0] += 1
                continue
            }
            var values = spec.make(&state.context)
            state.inserts += 1
            var spoiled: (BadRowKind, String)?
            if Int(Double(state.inserts) * options.badFraction) > state.bad {
                state.bad += 1
                spoiled = spoil(&values, spec: spec, ordinal: state.bad, rng: &state.context.rng)
            }
            try inserts[which].execute(arguments: StatementArguments([modified] + values))
            let id = db.lastInsertedRowID
            maxIds[which] = id
            report.inserted += 1
            report.byTable[spec.table, default: 0] += 1
            if let (kind, column) = spoiled {
                report.bad += 1
                report.badRows.append(BadRow(table: spec.table, id: id, kind: kind, column: column))
            }
        }
        return report
    }

    /// Spoils one row: a wrong check character, a NULL in a required column or a date that is not
    /// a date, in turn (as far as the table has such columns).
    static func spoil(
        _ values: inout [DatabaseValue], spec: TableSpec, ordinal: Int, rng: inout SeededGenerator
    )
        -> (BadRowKind, String)
    {
        func index(_ column: String) -> Int { spec.columns.firstIndex(of: column)! }
        var kinds: [BadRowKind] = []
        let identifiers = spec.identifierColumns.filter { String.fromDatabaseValue(values[index($0)])?.count == 18 }
        if !identifiers.isEmpty { kinds.append(.corruptedCheckCharacter) }
        if !spec.requiredColumns.isEmpty { kinds.append(.nullRequiredField) }
        if !spec.dateColumns.isEmpty { kinds.append(.invalidDate) }
        switch kinds[ordinal % kinds.count] {
        case .corruptedCheckCharacter:
            let column = rng.pick(identifiers)
            let text = String.fromDatabaseValue(values[index(column)])!
            // A wrong check character that is wrong for both standards: a field such as `taxpayerId`
            // takes either, and a resident ID with a bad check character is a valid credit code 1 in 31.
            let start = rng.below(11)
            let candidates = Array("0123456789X")
            let spoiled = (0..<11).lazy.map { String(text.dropLast()) + String(candidates[(start + $0) % 11]) }
                .first { ResidentIDNumber.problem(in: $0) != nil && UnifiedSocialCreditCode.problem(in: $0) != nil }!
            values[index(column)] = spoiled.databaseValue
            return (.corruptedCheckCharacter, column)
        case .nullRequiredField:
            let column = rng.pick(spec.requiredColumns)
            values[index(column)] = .null
            return (.nullRequiredField, column)
        case .invalidDate:
            let column = rng.pick(spec.dateColumns)
            let compact = String.fromDatabaseValue(values[index(column)])?.count == 8
            values[index(column)] =
                rng.pick(compact ? ["20240231", "20251301", "abc"] : ["abc", "20240231", "2025-13-45"])
                .databaseValue
            return (.invalidDate, column)
        }
    }
}

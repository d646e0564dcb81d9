import EventLog
import Foundation
import Orchestrator

/// The timers of one case, as its row in `cases` keeps them (migration `v4-timers-in-cases`):
/// every timer the core set (``Effect/setTimer(_:at:)``) and did not cancel, fired or not.
///
/// A timer only changes when its case changes, so it is written by the same `INSERT`/`UPDATE`
/// that writes the case, in three columns beside the body:
/// - `timers`: the list below as text, `NULL` when empty;
/// - `next_timer`: the earliest due instant of an unfired timer (seconds since 1970, as
///   `next_due`), `NULL` when none, indexed (`cases_next_timer`, partial on `NOT NULL`) for the
///   timer loop (``OrchestratorStore/dueTimers(at:partitions:limit:)``,
///   ``OrchestratorStore/nextTimer()``);
/// - `fired_overdue`: how many of them are fired `overdue` timers (steps past their due date and
///   still undecided), indexed (partial on `> 0`) for ``OrchestratorStore/counts()``.
///
/// The text holds one timer a line (lines end with `\n`, in the order the timers were set), five
/// fields separated by one space: the due instant in milliseconds since 1970 (truncated, as
/// record timestamps are: the core's due instants are whole seconds), `1` when fired or `0`, the
/// kind (`r` reminder, `o` overdue), the attempt, and the step id, last so that it may hold
/// anything but a line break. The application id is the row's. For example, a step requested,
/// its reminder fired:
///
///     1772672400000 1 r 1 business-licence
///     1772755200000 0 o 1 business-licence
///
/// Small (a restaurant case holds at most ten, about 350 bytes, beside a body of up to 4 KB) and
/// read and written without a parser or an encoder.
///
/// Semantics, as with the table of their own they had before: setting a timer that exists moves
/// its due instant and keeps its fired flag; a cancelled timer is removed, fired or not; a fired
/// timer stays (marked) until its step's decision cancels it, so the fired `overdue` timers are
/// the overdue steps.
struct CaseTimers: Sendable, Hashable {
    struct Timer: Sendable, Hashable {
        var step: String
        var attempt: Int
        var kind: TimerKey.Kind
        var dueMilliseconds: Int64
        var fired: Bool

        var due: Date { Date(millisecondsSince1970: dueMilliseconds) }

        func key(_ applicationId: String) -> TimerKey {
            TimerKey(applicationId: applicationId, step: step, attempt: attempt, kind: kind)
        }

        func `is`(_ key: TimerKey) -> Bool { key.attempt == attempt && key.kind == kind && key.step == step }
    }

    private(set) var timers: [Timer] = []

    init() {}

    /// Reads the `timers` column (`nil`: none).
    /// - Throws: ``StoreError`` naming the application and the line that cannot be read.
    init(stored text: String?, applicationId: String) throws {
        guard var text, !text.isEmpty else { return }
        if let timers = text.withUTF8(Self.scan) {
            self.timers = timers
            return
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
            guard fields.count == 5, let due = Int64(fields[0]), fields[1] == "0" || fields[1] == "1",
                let kind = Self.kind(fields[2]), let attempt = Int(fields[3]), !fields[4].isEmpty
            else {
                throw StoreError(
                    "the stored timers of \(applicationId) cannot be read: '\(line)' is not 'due-ms fired(0|1) kind(r|o) attempt step'; rebuild the store from the log (onewindow orchestrator rebuild)"
                )
            }
            timers.append(
                Timer(step: String(fields[4]), attempt: attempt, kind: kind, dueMilliseconds: due, fired: fields[1] == "1"))
        }
    }

    /// The `timers` column: `nil` when there are none.
    var stored: String? {
        guard !timers.isEmpty else { return nil }
        var text = ""
        text.reserveCapacity(timers.count * 48)
        for timer in timers {
            text += "\(timer.dueMilliseconds) \(timer.fired ? "1" : "0") \(timer.kind == .reminder ? "r" : "o") \(timer.attempt) \(timer.step)\n"
        }
        return text
    }

    /// The timers of a well-formed `timers` column read from its bytes in one pass (reading a
    /// case's timers by splitting the text was a fifth of loading a case from the store); `nil`
    /// for anything else, which ``init(stored:applicationId:)`` reads the general way and names.
    static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> [Timer]? {
        var timers: [Timer] = []
        var index = 0
        let count = bytes.count
        /// A non-negative decimal number ending at a space, at most 18 digits.
        func number() -> Int64? {
            let start = index
            var value: Int64 = 0
            while index < count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                index += 1
            }
            guard index > start, index - start <= 18, index < count, bytes[index] == UInt8(ascii: " ") else { return nil }
            index += 1
            return value
        }
        /// One byte, then a space.
        func code() -> UInt8? {
            guard index + 1 < count, bytes[index + 1] == UInt8(ascii: " ") else { return nil }
            defer { index += 2 }
            return bytes[index]
        }
        while index < count {
            guard let due = number(), let fired = code(), fired == UInt8(ascii: "0") || fired == UInt8(ascii: "1"),
                let kindCode = code(), let attempt = number()
            else { return nil }
            let kind: TimerKey.Kind
            switch kindCode {
            case UInt8(ascii: "r"): kind = .reminder
            case UInt8(ascii: "o"): kind = .overdue
            default: return nil
            }
            let start = index
            while index < count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            // Every line ends with a line break; a step id is not empty.
            guard index < count, index > start else { return nil }
            let step = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            index += 1
            timers.append(
                Timer(step: step, attempt: Int(attempt), kind: kind, dueMilliseconds: due, fired: fired == UInt8(ascii: "1")))
        }
        return timers
    }

    static func kind(_ code: Substring) -> TimerKey.Kind? {
        switch code {
        case "r": .reminder
        case "o": .overdue
        default: nil
        }
    }

    /// The `next_timer` column: the earliest due instant of an unfired timer, in seconds since 1970.
    var next: Double? {
        timers.lazy.filter { !$0.fired }.map(\.dueMilliseconds).min().map { Date(millisecondsSince1970: $0).timeIntervalSince1970 }
    }

    /// The `fired_overdue` column.
    var firedOverdue: Int { timers.count(where: { $0.fired && $0.kind == .overdue }) }

    /// Sets `key` to fire at `at` (an existing one keeps its fired flag).
    mutating func set(_ key: TimerKey, at: Date) {
        let due = at.millisecondsSince1970
        if let index = timers.firstIndex(where: { $0.is(key) }) {
            timers[index].dueMilliseconds = due
        } else {
            timers.append(Timer(step: key.step, attempt: key.attempt, kind: key.kind, dueMilliseconds: due, fired: false))
        }
    }

    /// Removes `key`, fired or not.
    mutating func cancel(_ key: TimerKey) {
        timers.removeAll { $0.is(key) }
    }

    /// Marks `key` fired. - Returns: whether that changed anything (it was there and unfired).
    @discardableResult
    mutating func markFired(_ key: TimerKey) -> Bool {
        guard let index = timers.firstIndex(where: { $0.is(key) && !$0.fired }) else { return false }
        timers[index].fired = true
        return true
    }

    /// The unfired timers due at `now`.
    func due(at now: Date) -> [Timer] {
        let bound = now.timeIntervalSince1970
        return timers.filter { !$0.fired && $0.due.timeIntervalSince1970 <= bound }
    }
}

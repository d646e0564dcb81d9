import Foundation

/// One record of the hostile-input corpus (Tests/HostileInput/corpus/corpus.jsonl, written by
/// scripts/hostile-corpus.py; the format is in Tests/HostileInput/README.md).
public struct HostileRecord: Sendable, Decodable {
    /// What must become of it.
    public struct Expectation: Sendable, Decodable {
        /// `accepted` or `refused`.
        public var outcome: String
        /// The refusal's code (`dl_code`, or the gateway's `code`).
        public var code: String?
        /// The JSON pointer of the failing field (`""`: the whole body), or a header's name.
        public var pointer: String?
        /// The rule it broke, as the hub names it (`format`, `utf-8`, `unique-keys`, …).
        public var rule: String?
        /// The HTTP status the gateway answers (applications only).
        public var status: Int?

        public var accepted: Bool { outcome == "accepted" }
    }

    public struct Part: Sendable, Decodable {
        public var base64: String
        public var times: Int
    }

    /// 1-based position in the corpus.
    public var seq: Int
    /// `good`, `broken-json`, `invalid-utf8`, … (the README lists them).
    public var kind: String
    /// `event` (a department's event: publish, webhook, file drop) or `application` (the front desk).
    public var entry: String
    public var type: String?
    public var topic: String?
    public var workflow: String?
    /// Headers as sent, in order, repeats kept: `[name, value]`.
    public var headers: [[String]]
    public var expect: Expectation
    /// The entry points it goes to (`publisher`, `cli`, `webhook`, `file-drop`); `nil`: every one of its entry.
    public var via: [String]?
    public var note: String?
    private var body: String?
    private var bodyParts: [Part]?

    /// The body's bytes.
    public var bytes: Data {
        if let body { return Data(base64Encoded: body) ?? Data() }
        var data = Data()
        for part in bodyParts ?? [] {
            let unit = Data(base64Encoded: part.base64) ?? Data()
            for _ in 0..<part.times { data.append(unit) }
        }
        return data
    }

    /// Whether it goes to entry point `name`.
    public func goes(to name: String) -> Bool { via?.contains(name) ?? true }

    /// The first value of a header (case-insensitive name).
    public func header(_ name: String) -> String? {
        headers.first { $0.first?.lowercased() == name }.flatMap { $0.count > 1 ? $0[1] : nil }
    }

    /// A short label for messages: `#12 broken-json (tax.payment.received)`.
    public var label: String { "#\(seq) \(kind) (\(type ?? workflow ?? "?"))" }
}

/// The committed hostile-input corpus.
public enum HostileCorpus {
    /// Where it lives in the repository.
    public static let file = repositoryRoot.appendingPathComponent("Tests/HostileInput/corpus/corpus.jsonl")

    /// Every record, in order; loaded once.
    public static let all: [HostileRecord] = {
        do {
            let text = try String(contentsOf: file, encoding: .utf8)
            let decoder = JSONDecoder()
            return try text.split(separator: "\n").map { try decoder.decode(HostileRecord.self, from: Data($0.utf8)) }
        } catch {
            fatalError("\(file.path) does not load (regenerate it with scripts/hostile-corpus.py): \(error)")
        }
    }()

    /// The records of `entry` that go to entry point `name`: all of them under `make reliability`,
    /// else every `every`-th hostile one (a fixed sample, so a failure repeats) with every good one
    /// around them kept when `keepGood`.
    public static func records(entry: String, to name: String, every: Int = 1, keepGood: Bool = true) -> [HostileRecord] {
        let mine = all.filter { $0.entry == entry && $0.goes(to: name) }
        guard !ReliabilityRun.isFull, every > 1 else { return mine }
        var index = 0
        return mine.filter { record in
            if record.expect.accepted && keepGood { return true }
            index += 1
            return index % every == 0
        }
    }
}

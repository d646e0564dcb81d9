import Foundation

/// A grant written wrongly on the command line or in the key store.
public struct GrantSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text that was refused.
    public var text: String
    public var problem: String
    public var description: String { "grant '\(text)': \(problem)" }
}

extension Grant: CustomStringConvertible, LosslessStringConvertible {
    /// The grants' text forms, for messages: `publish:PATTERN`, `read:PATTERN`, `submit:WORKFLOW`,
    /// `progress`, `replay`, `dead-letters`, `personal-data`.
    public static let forms = [
        "publish:PATTERN", "read:PATTERN", "submit:WORKFLOW", "progress", "replay", "dead-letters", "personal-data",
    ]

    /// The text form (see the table on ``Grant``), which ``init(parsing:)`` reads back.
    public var description: String {
        switch self {
        case .publish(let topics): "publish:\(topics)"
        case .read(let topics): "read:\(topics)"
        case .submit(let workflow): "submit:\(workflow)"
        case .progress: "progress"
        case .replay: "replay"
        case .deadLetters: "dead-letters"
        case .personalData: "personal-data"
        }
    }

    /// Reads a grant's text form (`publish:approval.tax.*`, `replay`).
    /// - Throws: ``GrantSyntaxError`` naming the forms when the text is none of them, or a pattern
    ///   is empty or holds characters a topic name cannot (topic names: letters, digits, `.`, `_`, `-`;
    ///   patterns add `*`).
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        let argument = parts.count > 1 ? parts[1] : nil
        func pattern(_ what: String) throws -> String {
            guard let argument, !argument.isEmpty else {
                throw GrantSyntaxError(text: text, problem: "\(name) needs a \(what) after the colon, e.g. \(name):approval.tax.*")
            }
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*")
            if let bad = argument.first(where: { !allowed.contains($0) }) {
                throw GrantSyntaxError(
                    text: text, problem: "'\(bad)' cannot be in a \(what) (letters, digits, '.', '_', '-' and '*' for any run of characters)")
            }
            return argument
        }
        func bare() throws {
            if argument != nil { throw GrantSyntaxError(text: text, problem: "\(name) takes nothing after it") }
        }
        switch name {
        case "publish": self = .publish(topics: try pattern("topic pattern"))
        case "read": self = .read(topics: try pattern("topic pattern"))
        case "submit": self = .submit(workflow: try pattern("workflow"))
        case "progress":
            try bare()
            self = .progress
        case "replay":
            try bare()
            self = .replay
        case "dead-letters":
            try bare()
            self = .deadLetters
        case "personal-data":
            try bare()
            self = .personalData
        default:
            throw GrantSyntaxError(text: text, problem: "not a grant; write one of \(Self.forms.joined(separator: ", "))")
        }
    }

    /// `LosslessStringConvertible`: `nil` where ``init(parsing:)`` throws.
    public init?(_ description: String) {
        guard let grant = try? Grant(parsing: description) else { return nil }
        self = grant
    }

    /// Whether this grant allows publishing to `topic`.
    public func allowsPublishing(to topic: String) -> Bool {
        if case .publish(let pattern) = self { return TopicPattern.matches(pattern, topic) }
        return false
    }

    /// Whether this grant allows reading `topic`.
    public func allowsReading(_ topic: String) -> Bool {
        if case .read(let pattern) = self { return TopicPattern.matches(pattern, topic) }
        return false
    }

    /// Whether this grant allows submitting applications of `workflow`.
    public func allowsSubmitting(_ workflow: String) -> Bool {
        if case .submit(let pattern) = self { return TopicPattern.matches(pattern, workflow) }
        return false
    }
}

/// The patterns of grants: `*` stands for any run of characters (dots included), everything else
/// for itself. `approval.tax.*` matches `approval.tax.decided`; `*` matches everything.
public enum TopicPattern {
    /// Whether `name` matches `pattern` as a whole.
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        let pattern = Array(pattern.utf8)
        let name = Array(name.utf8)
        // Greedy matching with one back-tracking point (the last `*`): linear for these patterns.
        var p = 0
        var n = 0
        var star = -1
        var resume = 0
        while n < name.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = n
                p += 1
            } else if p < pattern.count, pattern[p] == name[n] {
                p += 1
                n += 1
            } else if star >= 0 {
                p = star + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

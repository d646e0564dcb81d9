import Foundation
import Yams

/// A problem at a place in a configuration file: the file, the line and column, the place as a
/// path of keys (`sources[0].interval`) and what is wrong.
///
/// `file:line:column: location: problem`, e.g.
/// `Connectors/tax.yaml:14:5: sources[0].intervall: unknown key; did you mean interval?`
public struct ConfigFileError: Error, Sendable, CustomStringConvertible {
    /// The file concerned.
    public var file: String
    /// 1-based line and column of the value concerned, when known.
    public var line: Int?
    public var column: Int?
    /// Where in the file, as keys and list indices, e.g. `topics[3].retention`; `""` for the file.
    public var location: String
    /// What is wrong and what would be right.
    public var problem: String

    public init(file: String, line: Int? = nil, column: Int? = nil, location: String, problem: String) {
        self.file = file
        self.line = line
        self.column = column
        self.location = location
        self.problem = problem
    }

    public var description: String {
        var text = file
        if let line {
            text += ":\(line)"
            if let column { text += ":\(column)" }
        }
        return location.isEmpty ? "\(text): \(problem)" : "\(text): \(location): \(problem)"
    }
}

/// A value of a configuration file (YAML), with where it is, read strictly: each accessor says
/// which type it expects and refuses another with the file, line and expected type.
///
/// Every configuration file of OneWindow (the topic catalog, connector files, the orchestrator's
/// rules) is read through this type, so they share one set of rules:
/// - a mapping's keys are declared (``ConfigMapping/allowOnly(_:)``); an unknown key is refused
///   with the nearest known one (`intervall: unknown key; did you mean interval?`);
/// - a value of the wrong type is refused with the type expected (`expected a whole number, found
///   text 'ten'`); a missing required key names the mapping's line;
/// - a key given twice is refused (YAML's rule; readers would otherwise disagree on which counts).
///
/// ```swift
/// let root = try ConfigNode.load(path: "Connectors/tax.yaml")
/// let document = try root.mapping()
/// try document.allowOnly(["name", "department", "sources"])
/// let name = try document.string("name")
/// ```
public struct ConfigNode {
    /// The file the value is in.
    public let file: String
    /// Where in the file, e.g. `sources[0].mapping./child/name`; `""` for the top.
    public let location: String
    /// The YAML node.
    public let node: Node

    init(file: String, location: String, node: Node) {
        self.file = file
        self.location = location
        self.node = node
    }

    /// The 1-based line of the value.
    public var line: Int? { node.mark?.line }
    /// The 1-based column of the value.
    public var column: Int? { node.mark?.column }

    /// Reads and parses a file.
    /// - Parameter hint: what to do when the file cannot be read (e.g. `run from the repository root`).
    /// - Throws: ``ConfigFileError``.
    public static func load(path: String, hint: String? = nil) throws -> ConfigNode {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            let exists = FileManager.default.fileExists(atPath: path)
            var problem = exists ? "cannot read the file (not UTF-8 text, or not readable)" : "no such file"
            if let hint { problem += "; \(hint)" }
            throw ConfigFileError(file: path, location: "", problem: problem)
        }
        return try parse(text, file: path)
    }

    /// Parses the text of a file.
    /// - Throws: ``ConfigFileError`` for text that is not YAML or is empty.
    public static func parse(_ text: String, file: String) throws -> ConfigNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.error(error, file: file)
        } catch {
            throw ConfigFileError(file: file, location: "", problem: "not valid YAML: \(error)")
        }
        guard let node else { throw ConfigFileError(file: file, line: 1, location: "", problem: "the file is empty") }
        return ConfigNode(file: file, location: "", node: node)
    }

    private static func error(_ error: YamlError, file: String) -> ConfigFileError {
        func firstLine(_ text: String) -> String { String(text.split(separator: "\n").first ?? "") }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigFileError(
                file: file, line: mark.line, column: mark.column, location: "", problem: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigFileError(
                file: file, line: context.mark.line, column: context.mark.column, location: "",
                problem: "key \(duplicates.joined(separator: ", ")) is given more than once in this mapping (first here); keep one")
        default:
            return ConfigFileError(file: file, location: "", problem: "not valid YAML: \(firstLine("\(error)"))")
        }
    }

    /// A problem with this value.
    public func fail(_ problem: String) -> ConfigFileError {
        ConfigFileError(file: file, line: line, column: column, location: location, problem: problem)
    }

    /// The child at a key or index, for locations.
    func child(_ step: String, _ node: Node) -> ConfigNode {
        ConfigNode(file: file, location: location.isEmpty ? step : "\(location).\(step)", node: node)
    }

    /// What the value is, for messages: `text 'ten'`, `a list`, `a mapping`, `nothing`.
    public var shown: String {
        switch node {
        case .scalar(let scalar):
            if isNull { return "nothing" }
            if scalar.style == .plain, Int.construct(from: scalar) != nil { return "the number \(scalar.string)" }
            if scalar.style == .plain, Bool.construct(from: scalar) != nil { return "the boolean \(scalar.string)" }
            return "text '\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// Whether the value is YAML's null (`~`, `null` or nothing after the colon).
    public var isNull: Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// The value as text: any scalar but null, as written (`2024` is the text `2024`).
    /// - Throws: ``ConfigFileError`` for a list, a mapping, nothing, or empty text.
    public func string() throws -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw fail("expected text, found \(shown)") }
        guard !scalar.string.isEmpty else { throw fail("expected text, found empty text") }
        return scalar.string
    }

    /// The value as a whole number.
    /// - Throws: ``ConfigFileError`` for anything else (text, a fraction, a list…).
    public func int() throws -> Int {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int.construct(from: scalar) else {
            throw fail("expected a whole number, found \(shown)")
        }
        return value
    }

    /// The value as a boolean (`true` or `false`).
    public func bool() throws -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Bool.construct(from: scalar) else {
            throw fail("expected true or false, found \(shown)")
        }
        return value
    }

    /// The value as a plain Swift value (`String`, `Int`, `Double`, `Bool`, arrays, dictionaries),
    /// as YAML types it, for values whose type the reader does not fix (a mapping's constant).
    public var any: Any { node.any }

    /// The line and column of this value and of every value inside it, by location
    /// (`sources[0].mapping./child/name` → 23:7), so that checks made after reading — against the
    /// catalog, a database — can still point at the line.
    public func places() -> [String: Place] {
        var result: [String: Place] = [:]
        func walk(_ value: ConfigNode) {
            if let line = value.line { result[value.location] = Place(line: line, column: value.column ?? 1) }
            switch value.node {
            case .sequence: for element in (try? value.list()) ?? [] { walk(element) }
            case .mapping: for entry in (try? value.mapping())?.entries ?? [] { walk(entry.value) }
            default: break
            }
        }
        walk(self)
        return result
    }

    /// The elements of a list.
    public func list() throws -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw fail("expected a list, found \(shown)") }
        return sequence.enumerated().map { index, element in
            ConfigNode(file: file, location: "\(location)[\(index)]", node: element)
        }
    }

    /// The entries of a mapping, in file order, whose keys are text.
    /// - Parameter keys: when given, the only keys allowed (see ``ConfigMapping/allowOnly(_:)``).
    public func mapping(keys: [String]? = nil) throws -> ConfigMapping {
        guard case .mapping(let mapping) = node else { throw fail("expected a mapping (key: value), found \(shown)") }
        var entries: [(key: String, keyNode: ConfigNode, value: ConfigNode)] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                let keyNode = ConfigNode(file: file, location: location, node: key)
                throw keyNode.fail("a key must be text, found \(keyNode.shown)")
            }
            entries.append((scalar.string, child(scalar.string, key), child(scalar.string, value)))
        }
        let result = ConfigMapping(node: self, entries: entries)
        if let keys { try result.allowOnly(keys) }
        return result
    }
}

/// A line and column in a file (1-based).
public struct Place: Sendable, Hashable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// A mapping of a configuration file, read key by key. See ``ConfigNode``.
public struct ConfigMapping {
    /// The mapping itself.
    public let node: ConfigNode
    /// The entries in file order; `keyNode` is where the key is written.
    public let entries: [(key: String, keyNode: ConfigNode, value: ConfigNode)]

    /// The keys, in file order.
    public var keys: [String] { entries.map(\.key) }

    /// The value at a key, `nil` when the key is absent.
    public subscript(key: String) -> ConfigNode? { entries.first { $0.key == key }?.value }

    /// Refuses a key not in `known`, naming the nearest known key when one is close
    /// (`intervall: unknown key; did you mean interval?`), else listing the known keys.
    public func allowOnly(_ known: [String]) throws {
        for entry in entries where !known.contains(entry.key) {
            if let nearest = KeySuggestion.nearest(to: entry.key, in: known) {
                throw entry.keyNode.fail("unknown key; did you mean \(nearest)?")
            }
            throw entry.keyNode.fail("unknown key; the keys here are \(known.joined(separator: ", "))")
        }
    }

    /// The value at a required key.
    /// - Throws: ``ConfigFileError`` at the mapping's line naming the missing key.
    public func require(_ key: String, _ what: String? = nil) throws -> ConfigNode {
        guard let value = self[key] else {
            let place = node.location.isEmpty ? "" : " in \(node.location)"
            throw ConfigFileError(
                file: node.file, line: node.line, column: node.column,
                location: node.location.isEmpty ? key : "\(node.location).\(key)",
                problem: "missing key \(key)\(place)" + (what.map { ": \($0)" } ?? ""))
        }
        return value
    }

    /// The text at a required key.
    public func string(_ key: String, _ what: String? = nil) throws -> String { try require(key, what).string() }

    /// The text at an optional key, `nil` when absent.
    public func optionalString(_ key: String) throws -> String? { try self[key]?.string() }

    /// The whole number at an optional key, `nil` when absent.
    public func optionalInt(_ key: String) throws -> Int? { try self[key]?.int() }

    /// The boolean at an optional key, `nil` when absent.
    public func optionalBool(_ key: String) throws -> Bool? { try self[key]?.bool() }
}

/// The known key nearest to a misspelt one.
public enum KeySuggestion {
    /// The known key within a small edit distance of `key` (letters added, dropped, changed or
    /// swapped, ignoring case), the closest first; `nil` when none is close enough to be a typo.
    public static func nearest(to key: String, in known: [String]) -> String? {
        let lowered = key.lowercased()
        var best: (String, Int)?
        for candidate in known {
            let distance = editDistance(lowered, candidate.lowercased())
            if best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        guard let (candidate, distance) = best else { return nil }
        // One edit for short keys, two from six letters, three from twelve.
        let allowed = max(1, min(3, min(key.count, candidate.count) / 4))
        return distance <= allowed ? candidate : nil
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    /// neighbouring characters each count one.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}

import Foundation

/// A schema's `pattern`, compiled once.
///
/// The patterns schemas use (`^[A-Z]{2,4}-[0-9]{4}-[0-9]{6}$`, `^[0-9]{4}-(0[1-9]|1[0-2])$`) run on
/// a small automaton of our own, over the string's Unicode scalars, without bridging to
/// `NSString`: literal characters, classes `[…]` (ranges, `^` negation), groups `(…)` with `|`,
/// the quantifiers `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}`, and the anchors `^` and `$` at the ends.
/// `$` matches at the end of the text only, as ECMA-262 (the dialect JSON Schema names) says.
/// Any other construct (`\d`, `.`, look-arounds, back-references…) is handed to
/// `NSRegularExpression`.
///
/// A class, so that a schema node reading its pattern retains one object, not each of its arrays.
final class SchemaPattern: Sendable {
    /// The pattern as the schema writes it.
    let source: String
    private let program: Program?
    private let linear: LinearPattern?
    private let fallback: NSRegularExpressionBox?

    /// - Throws: when the pattern is not a regular expression.
    init(_ source: String) throws {
        self.source = source
        if let (program, node) = Program.compile(source) {
            self.program = program
            self.linear = LinearPattern(node)
            self.fallback = nil
        } else {
            self.program = nil
            self.linear = nil
            self.fallback = NSRegularExpressionBox(try NSRegularExpression(pattern: source))
        }
    }

    /// Whether the pattern matches somewhere in `text` (patterns are not implicitly anchored).
    func matches(_ text: String) -> Bool {
        if let linear { return linear.matches(text) }
        if let program { return program.matches(text) }
        let range = NSRange(text.startIndex..., in: text)
        return fallback!.regex.firstMatch(in: text, range: range) != nil
    }

    /// Whether the pattern runs on the built-in automaton (for tests).
    var isCompiled: Bool { program != nil }

    /// Whether the pattern runs as a ``LinearPattern`` (for tests).
    var isLinear: Bool { linear != nil }

    /// The answer of the automaton, whichever way ``matches(_:)`` takes (for tests).
    func automatonMatches(_ text: String) -> Bool? { program?.matches(text) }
}

/// A pattern that is `^`, then runs of ASCII classes or characters each with a count, then `$`
/// (`^[A-Z]{2,4}-[0-9]{4}-[0-9]{6}$`, most of the schemas' patterns), matched in one pass over the
/// text's bytes, without the automaton's thread lists.
///
/// One pass is exact when no run can give a character back to the next: a run of fixed length
/// takes exactly its count, and a run of varying length is either the last or followed by a run
/// that takes at least one character, of a class sharing none with it. Then a run takes every
/// character of its class in a row (up to its maximum), as any match must. Classes are ASCII
/// and not negated, so a text with any other byte does not match, as the automaton says.
struct LinearPattern: Sendable {
    struct Run: Sendable {
        var low: UInt64
        var high: UInt64
        var minimum: Int
        var maximum: Int?

        @inline(__always)
        func accepts(_ byte: UInt8) -> Bool {
            byte < 64 ? low & (1 << UInt64(byte)) != 0 : byte < 128 && high & (1 << UInt64(byte - 64)) != 0
        }

        func overlaps(_ other: Run) -> Bool { low & other.low != 0 || high & other.high != 0 }
    }

    let runs: [Run]

    /// `nil` unless `node` (the automaton's parse) has the shape above.
    fileprivate init?(_ node: Program.Node) {
        guard case .sequence(let nodes) = node, nodes.count >= 2, case .start = nodes.first!, case .end = nodes.last!
        else { return nil }
        var runs: [Run] = []
        for atom in nodes.dropFirst().dropLast() {
            let set: ScalarClass
            var minimum = 1
            var maximum: Int? = 1
            switch atom {
            case .scalar(let scalars):
                set = scalars
            case .repetition(.scalar(let scalars), let low, let high):
                set = scalars
                minimum = low
                maximum = high
            default:
                return nil
            }
            guard !set.negated, set.ranges.isEmpty else { return nil }
            runs.append(Run(low: set.low, high: set.high, minimum: minimum, maximum: maximum))
        }
        for index in runs.indices.dropLast() where runs[index].minimum != runs[index].maximum {
            let next = runs[index + 1]
            guard next.minimum >= 1, !runs[index].overlaps(next) else { return nil }
        }
        self.runs = runs
    }

    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { utf8 in
            runs.withUnsafeBufferPointer { runs in
                var index = 0
                for run in runs {
                    let limit = run.maximum.map { utf8.count - index > $0 ? index + $0 : utf8.count } ?? utf8.count
                    let start = index
                    while index < limit, run.accepts(utf8[index]) { index += 1 }
                    if index - start < run.minimum { return false }
                }
                return index == utf8.count
            }
        }
    }
}

/// `NSRegularExpression` is immutable once made and documented as safe to use from several threads.
private final class NSRegularExpressionBox: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ regex: NSRegularExpression) { self.regex = regex }
}

/// A set of Unicode scalars: a bitmap for ASCII, ranges for the rest.
private struct ScalarClass: Sendable {
    var low: UInt64 = 0
    var high: UInt64 = 0
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    mutating func insert(_ range: ClosedRange<UInt32>) {
        if range.lowerBound <= 127 {
            for value in range.lowerBound...min(range.upperBound, 127) {
                if value < 64 { low |= 1 << UInt64(value) } else { high |= 1 << UInt64(value - 64) }
            }
        }
        if range.upperBound > 127 { ranges.append(max(range.lowerBound, 128)...range.upperBound) }
    }

    func contains(_ value: UInt32) -> Bool {
        let found: Bool
        if value < 64 {
            found = low & (1 << UInt64(value)) != 0
        } else if value < 128 {
            found = high & (1 << UInt64(value - 64)) != 0
        } else {
            found = ranges.contains { $0.contains(value) }
        }
        return found != negated
    }
}

/// A Thompson automaton (Pike VM without captures): linear in the text's length whatever the pattern.
private struct Program: Sendable {
    enum Instruction: Sendable {
        case scalar(ScalarClass)
        case split(Int, Int)
        case jump(Int)
        case start
        case end
        case match
    }

    var instructions: [Instruction]

    /// The parsed pattern, before it is laid out as instructions.
    indirect enum Node {
        case scalar(ScalarClass)
        case sequence([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?)
        case start
        case end
    }

    /// Compiles the supported subset, with its parse; `nil` for anything else.
    static func compile(_ source: String) -> (Program, Node)? {
        var parser = Parser(scalars: Array(source.unicodeScalars))
        guard let node = parser.parseAlternation(), parser.index == parser.scalars.count else { return nil }
        var program = Program(instructions: [])
        guard program.emit(node, budget: 2_000) else { return nil }
        program.instructions.append(.match)
        program.layOut()
        return (program, node)
    }

    /// Lays out a node; `false` when the program would grow past `budget` instructions.
    private mutating func emit(_ node: Node, budget: Int) -> Bool {
        if instructions.count > budget { return false }
        switch node {
        case .scalar(let set):
            instructions.append(.scalar(set))
        case .start:
            instructions.append(.start)
        case .end:
            instructions.append(.end)
        case .sequence(let nodes):
            for node in nodes where !emit(node, budget: budget) { return false }
        case .alternation(let branches):
            // split L1, next; L1: branch; jump end; next: split L2, … ; last branch.
            var jumps: [Int] = []
            for (index, branch) in branches.enumerated() {
                if index < branches.count - 1 {
                    let split = instructions.count
                    instructions.append(.split(split + 1, 0))
                    guard emit(branch, budget: budget) else { return false }
                    jumps.append(instructions.count)
                    instructions.append(.jump(0))
                    instructions[split] = .split(split + 1, instructions.count)
                } else {
                    guard emit(branch, budget: budget) else { return false }
                }
            }
            for jump in jumps { instructions[jump] = .jump(instructions.count) }
        case .repetition(let inner, let minimum, let maximum):
            for _ in 0..<minimum where !emit(inner, budget: budget) { return false }
            if let maximum {
                // Each optional copy: split body, end-of-optionals (greedy).
                var splits: [Int] = []
                for _ in minimum..<maximum {
                    splits.append(instructions.count)
                    instructions.append(.split(instructions.count + 1, 0))
                    guard emit(inner, budget: budget) else { return false }
                }
                for split in splits { instructions[split] = .split(split + 1, instructions.count) }
            } else {
                // loop: split body, out; body; jump loop.
                let loop = instructions.count
                instructions.append(.split(loop + 1, 0))
                guard emit(inner, budget: budget) else { return false }
                instructions.append(.jump(loop))
                instructions[loop] = .split(loop + 1, instructions.count)
            }
        }
        return true
    }

    /// One instruction laid out flat for matching: no payload to copy (and retain) per step.
    struct Operation {
        enum Kind: UInt8 {
            case scalar, split, jump, start, end, match
        }

        var kind: Kind
        /// The targets of a split or a jump.
        var first: Int = 0
        var second: Int = 0
        /// A scalar class: its ASCII bitmap, negation, and its index in ``Program/classes``.
        var low: UInt64 = 0
        var high: UInt64 = 0
        var negated = false
        var classIndex = 0

        /// Whether a scalar class takes `scalar`; above ASCII, the class's ranges decide.
        @inline(__always)
        func accepts(_ scalar: UInt32, classes: [ScalarClass]) -> Bool {
            if scalar < 64 { return (low & (1 << UInt64(scalar)) != 0) != negated }
            if scalar < 128 { return (high & (1 << UInt64(scalar - 64)) != 0) != negated }
            return classes[classIndex].contains(scalar)
        }
    }

    /// ``instructions`` as ``Operation``s, and the scalar classes they index.
    private(set) var operations: [Operation] = []
    private(set) var classes: [ScalarClass] = []

    /// Lays ``instructions`` out as ``operations``.
    mutating func layOut() {
        operations = instructions.map { instruction in
            switch instruction {
            case .scalar(let set):
                classes.append(set)
                return Operation(
                    kind: .scalar, low: set.low, high: set.high, negated: set.negated, classIndex: classes.count - 1)
            case .split(let first, let second): return Operation(kind: .split, first: first, second: second)
            case .jump(let target): return Operation(kind: .jump, first: target)
            case .start: return Operation(kind: .start)
            case .end: return Operation(kind: .end)
            case .match: return Operation(kind: .match)
            }
        }
    }

    /// Whether the program matches anywhere in `text`. It reads the text's UTF-8 bytes, decoding a
    /// scalar only where a byte is not ASCII; a program that starts with `^` stops as soon as no
    /// thread is left, since no match can start later.
    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { utf8 in
            operations.withUnsafeBufferPointer { operations in run(operations, on: utf8) }
        }
    }

    private func run(_ operations: UnsafeBufferPointer<Operation>, on utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = operations.count
        let anchored = operations[0].kind == .start
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: count * 3) { buffer in
            // Two thread lists and, per instruction, the step at which it was last added.
            let current = UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
            let next = UnsafeMutableBufferPointer(rebasing: buffer[count..<2 * count])
            let marks = UnsafeMutableBufferPointer(rebasing: buffer[2 * count..<3 * count])
            marks.initialize(repeating: -1)
            var currentCount = 0
            var nextCount = 0
            var step = 0
            var index = 0
            var atEnd = utf8.isEmpty
            var matched = false

            // Adds a thread at `pc` and everything reachable from it without reading a scalar.
            func add(_ pc: Int, to list: UnsafeMutableBufferPointer<Int>, _ listCount: inout Int) {
                if marks[pc] == step { return }
                marks[pc] = step
                let operation = operations[pc]
                switch operation.kind {
                case .jump: add(operation.first, to: list, &listCount)
                case .split:
                    add(operation.first, to: list, &listCount)
                    add(operation.second, to: list, &listCount)
                case .start: if index == 0 { add(pc + 1, to: list, &listCount) }
                case .end: if atEnd { add(pc + 1, to: list, &listCount) }
                case .match: matched = true
                case .scalar:
                    list[listCount] = pc
                    listCount += 1
                }
            }

            add(0, to: current, &currentCount)
            while !matched {
                if atEnd || (anchored && currentCount == 0) { return false }
                var scalar = UInt32(utf8[index])
                if scalar < 0x80 {
                    index += 1
                } else {
                    // Well-formed UTF-8 (it is a String's): the lead byte says the length.
                    let length = scalar >= 0xF0 ? 4 : scalar >= 0xE0 ? 3 : 2
                    scalar &= length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07
                    for offset in 1..<length { scalar = scalar << 6 | UInt32(utf8[index + offset] & 0x3F) }
                    index += length
                }
                atEnd = index == utf8.count
                step += 1
                nextCount = 0
                for slot in 0..<currentCount {
                    let pc = current[slot]
                    if operations[pc].accepts(scalar, classes: classes) { add(pc + 1, to: next, &nextCount) }
                }
                // Unanchored: a match may also start here.
                if !anchored { add(0, to: next, &nextCount) }
                for slot in 0..<nextCount { current[slot] = next[slot] }
                currentCount = nextCount
            }
            return true
        }
    }

    /// A recursive-descent parser for the supported subset.
    struct Parser {
        let scalars: [Unicode.Scalar]
        var index = 0

        init(scalars: [Unicode.Scalar]) {
            self.scalars = scalars
        }

        var peek: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

        mutating func parseAlternation() -> Node? {
            var branches: [Node] = []
            guard let first = parseSequence() else { return nil }
            branches.append(first)
            while peek == "|" {
                index += 1
                guard let branch = parseSequence() else { return nil }
                branches.append(branch)
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func parseSequence() -> Node? {
            var nodes: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" {
                guard var atom = parseAtom() else { return nil }
                if case .start = atom, !(nodes.isEmpty && index == 1) { return nil }  // `^` only first
                if case .end = atom, index != scalars.count { return nil }  // `$` only last
                if let (minimum, maximum) = parseQuantifier() {
                    switch atom {
                    case .start, .end: return nil
                    default: atom = .repetition(atom, min: minimum, max: maximum)
                    }
                } else if index < scalars.count, "?*+{".unicodeScalars.contains(scalars[index]) {
                    return nil  // a quantifier we do not take (lazy, possessive, malformed)
                }
                nodes.append(atom)
            }
            return .sequence(nodes)
        }

        mutating func parseAtom() -> Node? {
            guard let scalar = peek else { return nil }
            index += 1
            switch scalar {
            case "^": return .start
            case "$": return .end
            case "(":
                if peek == "?" { return nil }  // non-capturing and look-around groups: not ours
                guard let inner = parseAlternation(), peek == ")" else { return nil }
                index += 1
                return inner
            case "[": return parseClass()
            case "\\":
                guard let escaped = peek, Self.isPunctuation(escaped) else { return nil }
                index += 1
                return .scalar(Self.single(escaped))
            case ".", "?", "*", "+", "{", "}", ")", "]", "|": return nil
            default: return .scalar(Self.single(scalar))
            }
        }

        mutating func parseClass() -> Node? {
            var set = ScalarClass()
            if peek == "^" {
                set.negated = true
                index += 1
            }
            var members = 0
            while let scalar = peek, scalar != "]" {
                index += 1
                members += 1
                var lower = scalar
                if scalar == "\\" {
                    guard let escaped = peek, Self.isPunctuation(escaped) else { return nil }
                    index += 1
                    lower = escaped
                } else if scalar == "[" || scalar == "&" || scalar == ":" {
                    return nil  // nested classes, POSIX names and set operations (ICU): not ours
                } else if scalar == "-", members > 1, peek != "]" {
                    return nil  // a dash that is neither first nor last nor in a range: not ours
                }
                if peek == "-", index + 1 < scalars.count, scalars[index + 1] != "]" {
                    index += 1
                    guard let upper = peek, upper != "\\", upper != "[", upper.value >= lower.value else { return nil }
                    index += 1
                    set.insert(lower.value...upper.value)
                } else {
                    set.insert(lower.value...lower.value)
                }
            }
            guard peek == "]", members > 0 else { return nil }
            index += 1
            return .scalar(set)
        }

        /// `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}` (greedy only), or `nil` when none follows.
        mutating func parseQuantifier() -> (Int, Int?)? {
            guard let scalar = peek else { return nil }
            let result: (Int, Int?)
            switch scalar {
            case "?": result = (0, 1)
            case "*": result = (0, nil)
            case "+": result = (1, nil)
            case "{":
                var cursor = index + 1
                func number() -> Int? {
                    var value: Int?
                    while cursor < scalars.count, let digit = Int(String(scalars[cursor])), scalars[cursor].isASCII {
                        value = (value ?? 0) * 10 + digit
                        if value! > 1000 { return nil }
                        cursor += 1
                    }
                    return value
                }
                guard let minimum = number() else { return nil }
                var maximum: Int? = minimum
                if cursor < scalars.count, scalars[cursor] == "," {
                    cursor += 1
                    maximum = number()
                }
                guard cursor < scalars.count, scalars[cursor] == "}", maximum.map({ $0 >= minimum }) ?? true else {
                    return nil
                }
                index = cursor + 1
                if let next = peek, "?+".unicodeScalars.contains(next) { return nil }
                return (minimum, maximum)
            default: return nil
            }
            index += 1
            if let next = peek, "?+".unicodeScalars.contains(next) { return nil }  // lazy or possessive
            return result
        }

        static func single(_ scalar: Unicode.Scalar) -> ScalarClass {
            var set = ScalarClass()
            set.insert(scalar.value...scalar.value)
            return set
        }

        /// An escaped ASCII punctuation character stands for itself; letters and digits after `\`
        /// are classes or references this parser leaves to `NSRegularExpression`.
        static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII && !(scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) && scalar.value > 32
        }
    }
}
